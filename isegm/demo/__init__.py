"""The GraCo annotation tool: a Tk window (:mod:`.app`) over a display-free state (:mod:`.controller`)."""
