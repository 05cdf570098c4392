"""The GraCo annotation tool (Tk only): the window (:mod:`.tk_app`), its canvas, pictures and worker thread, and the
UI-thread state (:mod:`.controller`) over the display-free :mod:`isegm.interactive` core."""
