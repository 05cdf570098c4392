"""The display-free interactive core shared by the front ends (Tk tool, web app, Label Studio backend, segment
everything): prediction options (:mod:`.settings`), one object's session over a shared model (:mod:`.session`), the
finished objects of an image (:mod:`.annotation`) and their files (:mod:`.export`). No Tk, HTTP or Gradio here."""
from .annotation import AnnotatedObject, Annotation, object_colour, palette
from .session import ObjectSession, SharedModel, click_key
from .settings import PredictorSettings

__all__ = ["AnnotatedObject", "Annotation", "ObjectSession", "PredictorSettings", "SharedModel", "click_key",
           "object_colour", "palette"]
