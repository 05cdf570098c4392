"""The Tk window of the GraCo annotation tool."""
import json
import logging
import tkinter as tk
from dataclasses import replace
from pathlib import Path
from tkinter import filedialog, ttk
from typing import Callable, List

import numpy as np
from PIL import Image, ImageTk

from ..data.io import IMAGE_SUFFIXES, list_files, read_rgb_image
from ..interactive import AnnotatedObject, Annotation, PredictorSettings, object_colour
from ..interactive.export import read_mask, read_object_names, save_annotation
from ..signals import GRANULARITY_LEVELS
from .canvas import ZoomCanvas
from .controller import DemoController
from .render import render_strip_tile, render_view
from .worker import Worker

logger = logging.getLogger(__name__)

DEMO_IMAGE_SUFFIXES = IMAGE_SUFFIXES | {".webp"}
THUMB_SIZE = 72
POLL_MS = 30
HELP = ("left click: positive  |  right click: negative  |  wheel: zoom  |  right/middle drag: pan  |  "
        "space: finish object  |  a: partially finish  |  Ctrl+Z: undo  |  Ctrl+S: save  |  [ ]: granularity  |  "
        "PgUp/PgDn: previous/next image")


class DemoApp(ttk.Frame):
    """The annotation window: canvas with the granularity strip, controls on the right, a status bar below."""

    def __init__(self, master: tk.Tk, device, load_model: Callable[[], object], output_dir: Path,
                 settings: PredictorSettings = PredictorSettings(), strip: bool = True):
        super().__init__(master)
        self.master = master
        self.output_dir = Path(output_dir)
        self.images: List[Path] = []
        self.image_index = 0
        self.worker = Worker()
        self.controller = DemoController(self.worker, device, settings, on_change=self._schedule_redraw,
                                         strip_enabled=strip)
        self._redraw_pending = False
        self._layout_logged = False
        self._reset_view = True
        master.title("GraCo annotation tool")
        master.protocol("WM_DELETE_WINDOW", self.close)
        self.pack(fill="both", expand=True)
        self._build_vars(settings)
        self._build_menu()
        self._build_status()
        self._build_controls()
        self._build_canvas()
        self._bind_keys()
        self.controller.load_model(load_model)
        self.after(POLL_MS, self._poll)
        self.after(500, self._log_layout)

    # ----- widgets ---------------------------------------------------------------------------------------------
    def _build_vars(self, settings: PredictorSettings) -> None:
        self.vars = {
            "use_zoom_in": tk.BooleanVar(value=settings.use_zoom_in),
            "fixed_crop": tk.BooleanVar(value=settings.fixed_crop),
            "skip_clicks": tk.IntVar(value=settings.skip_clicks),
            "target_size": tk.IntVar(value=settings.target_size),
            "expansion_ratio": tk.DoubleVar(value=settings.expansion_ratio),
            "granularity": tk.DoubleVar(value=1.0),
            "phrase": tk.StringVar(value=""),
            "prob_thresh": tk.DoubleVar(value=0.5),
            "alpha_blend": tk.DoubleVar(value=0.5),
            "click_radius": tk.IntVar(value=3),
            "view": tk.StringVar(value="mask"),
        }
        self.limit_longest_size = settings.max_size

    def _build_menu(self) -> None:
        bar = ttk.Frame(self)
        bar.pack(side=tk.TOP, fill="x", padx=4, pady=2)
        buttons = [("Open image", self.open_image_dialog), ("Open folder", self.open_folder_dialog),
                   ("◀ Previous", lambda: self.step_image(-1)), ("Next ▶", lambda: self.step_image(1)),
                   ("Load mask", self.load_mask_dialog), ("Segment all", self.controller.segment_all),
                   ("Save", self.save), ("Exit", self.close)]
        self.menu_buttons = {}
        for text, command in buttons:
            button = ttk.Button(bar, text=text, command=command)
            button.pack(side=tk.LEFT, padx=1)
            self.menu_buttons[text] = button
        self.image_label = ttk.Label(bar, text="")
        self.image_label.pack(side=tk.LEFT, padx=8)

    def _build_status(self) -> None:
        bar = ttk.Frame(self, relief=tk.SUNKEN)
        bar.pack(side=tk.BOTTOM, fill="x")
        self.status_label = ttk.Label(bar, text="", anchor="w")
        self.status_label.pack(side=tk.LEFT, padx=4)
        self.speed_label = ttk.Label(bar, text="", anchor="e")
        self.speed_label.pack(side=tk.RIGHT, padx=4)
        self.error_label = tk.Label(bar, text="", fg="#b00000", anchor="w")
        self.error_label.pack(side=tk.LEFT, padx=8, fill="x", expand=True)
        ttk.Label(self, text=HELP, foreground="#555555").pack(side=tk.BOTTOM, fill="x", padx=4)

    def _build_canvas(self) -> None:
        left = ttk.Frame(self)
        left.pack(side=tk.LEFT, fill="both", expand=True, padx=4, pady=4)
        self.strip_frame = ttk.LabelFrame(left, text="Granularity strip (click a thumbnail to set the slider)")
        self.strip_frame.pack(side=tk.BOTTOM, fill="x")
        self.thumbs: List[tk.Label] = []
        self._blank_thumb = ImageTk.PhotoImage(Image.new("RGB", (THUMB_SIZE, THUMB_SIZE), (48, 48, 48)))
        for k, gra in enumerate(GRANULARITY_LEVELS):
            cell = ttk.Frame(self.strip_frame)
            cell.grid(row=0, column=k, padx=1, pady=1)
            thumb = tk.Label(cell, image=self._blank_thumb, width=THUMB_SIZE, height=THUMB_SIZE,
                             background="#303030", cursor="hand2", borderwidth=2, relief=tk.FLAT)
            thumb.pack()
            ttk.Label(cell, text=f"{gra:.1f}").pack()
            thumb.bind("<Button-1>", lambda event, g=gra: self.set_granularity(g))
            self.thumbs.append(thumb)
        self._thumb_photos: List[ImageTk.PhotoImage] = []
        self.canvas = ZoomCanvas(left, on_click=self._on_click, width=640, height=480)
        self.canvas.pack(side=tk.TOP, fill="both", expand=True)
        self.canvas.bind("<Configure>", lambda event: (self.canvas._on_resize(), self._schedule_layout_log()), add="+")

    def _build_controls(self) -> None:
        panel = ttk.Frame(self)
        panel.pack(side=tk.RIGHT, fill="y", padx=4, pady=4)
        clicks = ttk.LabelFrame(panel, text="Clicks")
        clicks.pack(fill="x", pady=2)
        self.click_buttons = {}
        for row, (text, command) in enumerate([("Finish object (space)", self.controller.finish_object),
                                               ("Partially finish (a)", self.controller.partially_finish_object),
                                               ("Undo click (Ctrl+Z)", self.controller.undo),
                                               ("Reset clicks", self.controller.reset_object)]):
            button = ttk.Button(clicks, text=text, command=command)
            button.grid(row=row // 2, column=row % 2, sticky="ew", padx=1, pady=1)
            self.click_buttons[text] = button

        gra = ttk.LabelFrame(panel, text="Granularity (part 0.1 ... 1.0 whole)")
        gra.pack(fill="x", pady=2)
        self.gra_scale = tk.Scale(gra, from_=0.1, to=1.0, resolution=0.01, orient=tk.HORIZONTAL, length=240,
                                  variable=self.vars["granularity"], command=lambda value: self.set_granularity(value))
        self.gra_scale.pack(fill="x", padx=4)

        phrase = ttk.LabelFrame(panel, text="Part name (phrase)")
        phrase.pack(fill="x", pady=2)
        self.phrase_entry = ttk.Entry(phrase, textvariable=self.vars["phrase"], width=22)
        self.phrase_entry.grid(row=0, column=0, padx=2, pady=2)
        self.phrase_entry.bind("<Return>", lambda event: self.submit_phrase())
        self.phrase_button = ttk.Button(phrase, text="Apply", command=self.submit_phrase)
        self.phrase_button.grid(row=0, column=1, padx=2)
        self.phrase_reason = ttk.Label(phrase, text="", foreground="#805000", wraplength=260)
        self.phrase_reason.grid(row=1, column=0, columnspan=2, sticky="w")

        view = ttk.LabelFrame(panel, text="View")
        view.pack(fill="x", pady=2)
        ttk.Radiobutton(view, text="Mask", value="mask", variable=self.vars["view"],
                        command=self._schedule_redraw).grid(row=0, column=0)
        ttk.Radiobutton(view, text="Probability map", value="probs", variable=self.vars["view"],
                        command=self._schedule_redraw).grid(row=0, column=1)
        ttk.Button(view, text="Fit", command=self.canvas_fit).grid(row=0, column=2)

        self.zoom_frame = ttk.LabelFrame(panel, text="ZoomIn options")
        self.zoom_frame.pack(fill="x", pady=2)
        ttk.Checkbutton(self.zoom_frame, text="Use ZoomIn", variable=self.vars["use_zoom_in"],
                        command=self._settings_changed).grid(row=0, column=0, sticky="w")
        ttk.Checkbutton(self.zoom_frame, text="Fixed crop", variable=self.vars["fixed_crop"],
                        command=self._settings_changed).grid(row=1, column=0, sticky="w")
        limit = self.limit_longest_size or 4096
        for row, (label, name, low, high, step) in enumerate([("Skip clicks", "skip_clicks", -1, 100, 1),
                                                              ("Target size", "target_size", 100, limit, 16),
                                                              ("Expand ratio", "expansion_ratio", 1.0, 2.0, 0.1)]):
            ttk.Label(self.zoom_frame, text=label).grid(row=row, column=1, sticky="e")
            box = ttk.Spinbox(self.zoom_frame, from_=low, to=high, increment=step, width=6,
                              textvariable=self.vars[name], command=self._settings_changed)
            box.bind("<FocusOut>", lambda event: self._settings_changed())
            box.bind("<Return>", lambda event: self._settings_changed())
            box.grid(row=row, column=2, padx=2, pady=1)

        for title, name, low, high, resolution in [("Prediction threshold", "prob_thresh", 0.0, 1.0, 0.01),
                                                   ("Mask opacity (alpha blending)", "alpha_blend", 0.0, 1.0, 0.01),
                                                   ("Click radius", "click_radius", 0, 7, 1)]:
            frame = ttk.LabelFrame(panel, text=title)
            frame.pack(fill="x", pady=2)
            tk.Scale(frame, from_=low, to=high, resolution=resolution, orient=tk.HORIZONTAL, length=240,
                     variable=self.vars[name], command=lambda value, n=name: self._view_option_changed(n)
                     ).pack(fill="x", padx=4)

        self.objects_label = ttk.Label(panel, text="objects: 0", wraplength=260, justify="left")
        self.objects_label.pack(fill="x", pady=4)

    def _bind_keys(self) -> None:
        root = self.master
        root.bind("<space>", self._key(self.controller.finish_object))
        root.bind("a", self._key(self.controller.partially_finish_object))
        root.bind("<Control-z>", lambda event: self.controller.undo())
        root.bind("<Control-s>", lambda event: self.save())
        root.bind("<bracketleft>", self._key(lambda: self.set_granularity(self.vars["granularity"].get() - 0.1)))
        root.bind("<bracketright>", self._key(lambda: self.set_granularity(self.vars["granularity"].get() + 0.1)))
        root.bind("<Prior>", self._key(lambda: self.step_image(-1)))
        root.bind("<Next>", self._key(lambda: self.step_image(1)))

    def _key(self, action: Callable[[], object]):
        """A key handler that does nothing while the user types in an entry."""
        def handler(event):
            if isinstance(event.widget, (tk.Entry, ttk.Entry, ttk.Spinbox)):
                return None
            action()
            return "break"
        return handler

    # ----- actions ---------------------------------------------------------------------------------------------
    def _on_click(self, x: float, y: float, positive: bool) -> None:
        self.controller.add_click(int(x), int(y), positive)

    def set_granularity(self, value) -> None:
        value = round(min(1.0, max(0.1, float(value))), 2)
        if abs(self.vars["granularity"].get() - value) > 1e-9:
            self.vars["granularity"].set(value)
        self.controller.set_granularity(value)

    def submit_phrase(self) -> None:
        self.controller.set_phrase(self.vars["phrase"].get())

    def canvas_fit(self) -> None:
        self.canvas.fit()

    def _settings_changed(self) -> None:
        try:
            settings = replace(self.controller.settings, use_zoom_in=self.vars["use_zoom_in"].get(),
                               fixed_crop=self.vars["fixed_crop"].get(), skip_clicks=int(self.vars["skip_clicks"].get()),
                               target_size=int(self.vars["target_size"].get()),
                               expansion_ratio=float(self.vars["expansion_ratio"].get()))
        except (tk.TclError, ValueError):
            self.controller.status.error = "ZoomIn options: enter numbers"
            self._schedule_redraw()
            return
        if settings.target_size < 16 or not 1.0 <= settings.expansion_ratio <= 4.0 or settings.skip_clicks < -1:
            self.controller.status.error = "ZoomIn options out of range (target size >= 16, ratio 1..4, skip >= -1)"
        else:
            self.controller.set_settings(settings)
        self._schedule_redraw()

    def _view_option_changed(self, name: str) -> None:
        if name == "prob_thresh":
            self.controller.set_prob_thresh(self.vars["prob_thresh"].get())
        self._schedule_redraw()

    def open_image(self, path: Path) -> bool:
        """Show ``path`` (and its saved annotation from the output folder, to continue it); errors are shown."""
        try:
            image = read_rgb_image(path)
        except ValueError as error:
            self.controller.status.error = str(error)
            logger.error("%s", error)
            self._schedule_redraw()
            return False
        objects = self._saved_objects(path, image.shape)
        self.controller.set_image(image, path, objects)
        self._reset_view = True
        self.controller.status.message = f"{Path(path).name}" + (f": {len(objects)} saved objects" if objects else "")
        logger.info("image %s (%d x %d)", path, image.shape[1], image.shape[0])
        return True

    def _saved_objects(self, path: Path, shape) -> List[AnnotatedObject]:
        saved = self.output_dir / f"{Path(path).stem}.png"
        if not saved.is_file():
            return []
        try:
            mask = read_mask(saved, shape)
        except ValueError as error:
            logger.warning("ignoring %s", error)
            return []
        return Annotation.from_instances(mask, read_object_names(saved.with_suffix(".json"))).objects

    def open_folder(self, folder: Path) -> bool:
        try:
            images = list_files(folder, DEMO_IMAGE_SUFFIXES)
        except OSError as error:
            images, reason = [], str(error)
        else:
            reason = f"{folder}: no images in this folder"
        if not images:
            self.controller.status.error = reason
            self._schedule_redraw()
            return False
        self.images, self.image_index = images, 0
        return self.open_image(images[0])

    def step_image(self, step: int) -> None:
        """Previous or next image of the folder; the current annotation is saved first if it changed."""
        if not self.images:
            self.controller.status.error = "open a folder to go to the previous or next image"
            self._schedule_redraw()
            return
        index = self.image_index + step
        if not 0 <= index < len(self.images):
            self.controller.status.message = "first image" if index < 0 else "last image"
            self._schedule_redraw()
            return
        if self.controller.dirty and (self.controller.objects or self.controller.has_current_object):
            if not self.save():
                return
        self.image_index = index
        self.open_image(self.images[index])

    def open_image_dialog(self) -> None:
        name = filedialog.askopenfilename(parent=self.master, title="Open an image", filetypes=[
            ("Images", " ".join(f"*{s}" for s in (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff"))),
            ("All files", "*.*")])
        if name:
            self.images = []
            self.open_image(Path(name))

    def open_folder_dialog(self) -> None:
        name = filedialog.askdirectory(parent=self.master, title="Open an image folder")
        if name:
            self.open_folder(Path(name))

    def load_mask_dialog(self) -> None:
        if self.controller.image is None:
            return
        name = filedialog.askopenfilename(parent=self.master, title="Load a mask", filetypes=[
            ("Masks", "*.png *.bmp"), ("All files", "*.*")])
        if name:
            self.load_mask(Path(name))

    def load_mask(self, path: Path) -> bool:
        try:
            self.controller.load_mask(read_mask(path, self.controller.image.shape))
        except ValueError as error:
            self.controller.status.error = str(error)
            self._schedule_redraw()
            return False
        return True

    def save(self) -> bool:
        """Write the instance PNG, its coloured preview and the COCO JSON into the output folder."""
        controller = self.controller
        if controller.image is None:
            controller.status.error = "nothing to save: open an image first"
            self._schedule_redraw()
            return False
        path = controller.image_path or Path("image.png")
        try:
            paths = save_annotation(controller.image, controller.instance_mask(), path, self.output_dir,
                                    controller.object_names())
        except OSError as error:
            controller.status.error = f"cannot save: {error}"
            logger.error("%s", controller.status.error)
            self._schedule_redraw()
            return False
        controller.dirty = False
        controller.status.message = f"saved {paths['instances']} and {paths['coco'].name}"
        controller.status.error = ""
        self._schedule_redraw()
        return True

    def close(self) -> None:
        self.worker.close()
        self.master.destroy()

    # ----- drawing ---------------------------------------------------------------------------------------------
    def _poll(self) -> None:
        self.controller.poll()
        self.after(POLL_MS, self._poll)

    def _schedule_redraw(self) -> None:
        if not self._redraw_pending:
            self._redraw_pending = True
            self.after_idle(self._redraw)

    def _redraw(self) -> None:
        self._redraw_pending = False
        controller = self.controller
        status = controller.status
        self.status_label.configure(text=("working ...  " if status.busy else "") + status.message)
        self.error_label.configure(text=status.error)
        if status.seconds_per_click is not None:
            self.speed_label.configure(text=f"{status.precision}  {status.seconds_per_click:.2f} s/click")
        elif status.precision:
            self.speed_label.configure(text=status.precision)
        reason = controller.phrase_unavailable_reason
        state = tk.DISABLED if reason else tk.NORMAL
        self.phrase_entry.configure(state=state)
        self.phrase_button.configure(state=state)
        self.phrase_reason.configure(text=f"disabled: {reason}" if reason else
                                     (f"using phrase {controller.phrase!r}" if controller.phrase else ""))
        active = tk.NORMAL if controller.has_current_object else tk.DISABLED
        for button in self.click_buttons.values():
            button.configure(state=active)
        for child in self.zoom_frame.winfo_children():
            if not isinstance(child, ttk.Label):
                child.configure(state=tk.DISABLED if controller.clicks else tk.NORMAL)
        self.objects_label.configure(text=f"objects: {len(controller.objects)}" + "".join(
            f"\n  {o.object_id}: {o.name} ({int(o.mask.sum())} px)" for o in controller.objects))
        if controller.image_path is not None:
            position = f" ({self.image_index + 1}/{len(self.images)})" if self.images else ""
            self.image_label.configure(text=f"{controller.image_path.name}{position}")
        if controller.image is not None:
            self.canvas.show(self._visualization(), reset_view=self._reset_view)
            self._reset_view = False
        self._draw_strip()
        if controller.model is not None and not self._layout_logged:
            self._layout_logged = True
            self._schedule_layout_log()

    def _visualization(self) -> np.ndarray:
        controller = self.controller
        return render_view(controller.image, controller.instance_mask(), controller.current_prob,
                           controller.prob_thresh, float(self.vars["alpha_blend"].get()),
                           self.vars["view"].get() == "probs", controller.clicks,
                           int(self.vars["click_radius"].get()), object_colour(len(controller.objects) + 1))

    def _draw_strip(self) -> None:
        controller = self.controller
        maps = controller.strip
        photos: List[ImageTk.PhotoImage] = []
        current = round(float(self.vars["granularity"].get()), 1)
        for gra, thumb, k in zip(GRANULARITY_LEVELS, self.thumbs, range(len(self.thumbs))):
            selected = controller.phrase is None and abs(gra - current) < 1e-6
            thumb.configure(relief=tk.SOLID if selected else tk.FLAT,
                            background="#e0a000" if selected else "#303030")
            if maps is None or controller.image is None:
                thumb.configure(image=self._blank_thumb)
                continue
            picture = Image.fromarray(render_strip_tile(controller.image, maps[k], controller.prob_thresh,
                                                        object_colour(len(controller.objects) + 1)))
            picture.thumbnail((THUMB_SIZE, THUMB_SIZE))
            photo = ImageTk.PhotoImage(picture)
            photos.append(photo)
            thumb.configure(image=photo)
        self._thumb_photos = photos  # the previous photos may be freed only now

    # ----- layout report (for scripted use and tests) ------------------------------------------------------------
    def _schedule_layout_log(self) -> None:
        self.after(300, self._log_layout)

    def _log_layout(self) -> None:
        """Log where the main widgets are on the screen (INFO, one JSON line) so that scripts can drive the window."""
        self.update_idletasks()

        def box(widget) -> list:
            return [widget.winfo_rootx(), widget.winfo_rooty(), widget.winfo_width(), widget.winfo_height()]

        layout = {"window": box(self.master), "canvas": box(self.canvas), "scale": self.canvas.scale,
                  "origin": list(self.canvas.origin), "granularity_slider": box(self.gra_scale),
                  "save": box(self.menu_buttons["Save"]), "thumbnails": [box(t) for t in self.thumbs],
                  "phrase_enabled": str(self.phrase_entry.cget("state")) == tk.NORMAL,
                  "phrase_reason": self.phrase_reason.cget("text"), "model_ready": self.controller.model is not None,
                  "speed_status": self.speed_label.cget("text")}
        logger.info("layout %s", json.dumps(layout))
