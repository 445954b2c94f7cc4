"""`persense segment` and `persense eval` end to end on the embedded engines, and their handling of bad input."""

import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from streamer.cli import main
from streamer.rle import decode
from streamer.simulator import render_scene, render_support


def write_rgb(path, image):
    cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))


@pytest.fixture(scope="module")
def support_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("support")
    image, mask = render_support(seed=3, object_radius=24)
    write_rgb(folder / "support.png", image)
    cv2.imwrite(str(folder / "mask.png"), mask.astype(np.uint8) * 255)
    return folder / "support.png", folder / "mask.png"


@pytest.fixture(scope="module")
def scene():
    return render_scene(480, 360, n_objects=25, n_distractors=4, seed=11, object_radius=24)


def segment(support_files, out, *queries):
    return main(["-q", "segment", "--support", str(support_files[0]), "--support-mask", str(support_files[1]),
                 "--out", str(out), *map(str, queries)])


def test_segment_writes_the_result_schema_mask_and_overlay(tmp_path, support_files, scene):
    write_rgb(tmp_path / "q.jpg", scene.image)
    assert segment(support_files, tmp_path / "out", tmp_path / "q.jpg") == 0
    doc = json.loads((tmp_path / "out" / "q.json").read_text())
    assert doc["schema"] == "persense.result/1"
    assert (doc["width"], doc["height"]) == (480, 360)
    assert doc["count"] == len(doc["instances"]) and doc["count"] > 0
    union = np.zeros((360, 480), bool)
    for inst in doc["instances"]:
        assert set(inst) >= {"id", "score", "bbox", "area", "centroid", "mask"}
        mask = decode(inst["mask"])
        assert mask.shape == (360, 480) and mask.sum() == inst["area"]
        ys, xs = np.nonzero(mask)
        assert inst["bbox"] == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
        union |= mask
    saved = cv2.imread(str(tmp_path / "out" / "q_mask.png"), cv2.IMREAD_UNCHANGED) > 0
    assert np.array_equal(saved, union)
    assert cv2.imread(str(tmp_path / "out" / "q_overlay.jpg")).shape == (360, 480, 3)
    assert set(doc["timings_ms"]) >= {"encode", "density", "prompts", "decode", "postprocess"}


def test_grayscale_16bit_and_rgba_queries_are_converted(tmp_path, support_files, scene):
    gray = cv2.cvtColor(scene.image, cv2.COLOR_RGB2GRAY)
    cv2.imwrite(str(tmp_path / "g.png"), gray)
    cv2.imwrite(str(tmp_path / "d.png"), cv2.cvtColor(scene.image, cv2.COLOR_RGB2BGR).astype(np.uint16) * 257)
    cv2.imwrite(str(tmp_path / "a.png"), cv2.cvtColor(scene.image, cv2.COLOR_RGB2BGRA))
    assert segment(support_files, tmp_path / "out", tmp_path / "g.png", tmp_path / "d.png", tmp_path / "a.png") == 0
    deep = json.loads((tmp_path / "out" / "d.json").read_text())
    alpha = json.loads((tmp_path / "out" / "a.json").read_text())
    assert deep["count"] == alpha["count"] > 0  # 16-bit and RGBA carry the same colours as the 8-bit scene
    assert json.loads((tmp_path / "out" / "g.json").read_text())["width"] == 480


def test_a_query_without_the_product_counts_zero(tmp_path, support_files):
    belt = render_scene(320, 240, n_objects=0, n_distractors=6, seed=5, object_radius=24)
    write_rgb(tmp_path / "empty.png", belt.image)
    assert segment(support_files, tmp_path / "out", tmp_path / "empty.png") == 0
    assert json.loads((tmp_path / "out" / "empty.json").read_text())["count"] == 0


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "streamer", *map(str, args)], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("problem", ["missing", "not_image", "empty_mask", "size_mismatch"])
def test_bad_support_input_is_one_line_and_exit_2(tmp_path, support_files, scene, problem):
    image, mask = support_files
    write_rgb(tmp_path / "q.png", scene.image)
    if problem == "missing":
        image = tmp_path / "nope.png"
    elif problem == "not_image":
        image = tmp_path / "text.png"
        image.write_text("not an image")
    elif problem == "empty_mask":
        mask = tmp_path / "empty.png"
        cv2.imwrite(str(mask), np.zeros((240, 320), np.uint8))
    else:
        mask = tmp_path / "small.png"
        cv2.imwrite(str(mask), np.full((10, 10), 255, np.uint8))
    proc = run_cli("segment", "--support", image, "--support-mask", mask, "--out", tmp_path / "out", tmp_path / "q.png")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("persense segment: error:"), proc.stderr
    assert "Traceback" not in proc.stderr


def test_one_bad_query_does_not_lose_the_others(tmp_path, support_files, scene):
    write_rgb(tmp_path / "good.png", scene.image)
    (tmp_path / "bad.jpg").write_bytes(b"\x00" * 100)
    proc = run_cli("-q", "segment", "--support", support_files[0], "--support-mask", support_files[1],
                   "--out", tmp_path / "out", tmp_path / "bad.jpg", tmp_path / "good.png")
    assert proc.returncode == 2
    assert (tmp_path / "out" / "good.json").exists()
    assert "Traceback" not in proc.stderr and "bad.jpg" in proc.stderr


def test_eval_reports_class_wise_iou_count_error_and_buckets(tmp_path, scene):
    folder = tmp_path / "Images" / "widgets"
    folder.mkdir(parents=True)
    image, mask = render_support(seed=3, object_radius=24)
    write_rgb(folder / "00.jpg", image)
    cv2.imwrite(str(folder / "00.png"), mask.astype(np.uint8) * 255)
    truths = []
    for k, n in enumerate([20, 40], start=1):
        s = render_scene(480, 360, n_objects=n, n_distractors=3, seed=20 + k, object_radius=18 if n > 30 else 24)
        write_rgb(folder / f"{k:02d}.jpg", s.image)
        cv2.imwrite(str(folder / f"{k:02d}.png"), (s.labels > 0).astype(np.uint8) * 255)
        (folder / f"{k:02d}.json").write_text(json.dumps({"count": s.count}))
        truths.append(s)
    assert main(["-q", "eval", "--data", str(tmp_path), "--json", str(tmp_path / "eval.json")]) == 0
    report = json.loads((tmp_path / "eval.json").read_text())
    summary = report["summary"]
    assert summary["images"] == 2 and summary["classes"] == 1 and summary["images_with_counts"] == 2
    inter = sum(i["intersection"] for i in report["images"])
    union = sum(i["union"] for i in report["images"])
    assert summary["class_wise_miou"] == pytest.approx(inter / union)
    assert 0.5 < summary["class_wise_miou"] <= 1.0
    assert set(summary["density_buckets"]) == {"low", "medium"}
    assert summary["count_mae"] == pytest.approx(
        np.mean([abs(i["predicted_count"] - i["true_count"]) for i in report["images"]])
    )


def test_query_names_with_dots_keep_their_whole_stem(tmp_path, support_files, scene):
    for name in ("a.1.png", "a.2.png"):
        write_rgb(tmp_path / name, scene.image)
    assert segment(support_files, tmp_path / "out", tmp_path / "a.1.png", tmp_path / "a.2.png") == 0
    assert (tmp_path / "out" / "a.1.json").exists() and (tmp_path / "out" / "a.2.json").exists()


def test_bench_on_a_dead_rtsp_source_is_one_line(support_files):
    proc = run_cli("bench", "--source", "rtsp://user:secret@127.0.0.1:9/none", "--frames", "1",
                   "--support", support_files[0], "--support-mask", support_files[1])
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "source" in proc.stderr.splitlines()[-1] and "secret" not in proc.stderr
    # Only our line: not OpenCV's and FFmpeg's own ("[ WARN:...] ... VIDEOIO(FFMPEG)", "[tcp @ 0x...] ...").
    assert not [line for line in proc.stderr.splitlines() if line.startswith("[")], proc.stderr


def test_bench_reports_every_stage_and_the_true_count(tmp_path):
    out = tmp_path / "bench.json"
    proc = run_cli("-q", "bench", "--source", "sim:?objects=20&width=320&height=240&fps=0", "--frames", "3",
                   "--warmup", "1", "--json", out)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    assert report["frames"] == 3 and report["fps"] > 0
    assert set(report["stage_ms"]) >= {"capture", "encode", "density", "prompts", "decode", "postprocess", "tracking",
                                       "publish"}
    assert "tracking" in proc.stdout
    assert abs(report["objects_per_frame"] - report["truth_per_frame"]) <= 0.2 * report["truth_per_frame"]
    assert "frame" in proc.stdout or "fps" in proc.stdout
    # Figures carry the machine they came from.
    machine = report["machine"]
    assert machine["cores"] == os.cpu_count() and machine["cpu"]
    assert machine["versions"]["numpy"] == np.__version__ and "onnxruntime" in machine["versions"]
    assert "machine:" in proc.stdout


def test_bench_with_encode_ahead_measures_the_same_frames(tmp_path):
    out = tmp_path / "bench.json"
    proc = run_cli("-q", "bench", "--source", "sim:?objects=20&width=320&height=240&fps=0", "--frames", "4",
                   "--warmup", "1", "--encode-ahead", "on", "--json", out)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    assert report["encode_ahead"] is True and report["frames"] == 4 and report["fps"] > 0
    assert len(report["stage_ms"]) >= 7 and report["stage_ms"]["encode"]["median"] > 0
    assert abs(report["objects_per_frame"] - report["truth_per_frame"]) <= 0.2 * report["truth_per_frame"]


def test_a_missing_optional_runtime_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch", None)  # as if torch were not installed
    code = main(["export", "sam", "--random-weights", "0", "--model-type", "vit_b", "--out", str(tmp_path / "m")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "'torch'" in err[0] and "[sam]" in err[0]


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["eval", "--data", "{tmp}", "--limit", "0"], "--limit"),
        (["eval", "--data", "{tmp}", "--json", "{tmp}"], "is a directory"),
        (["export", "sam", "--random-weights", "0", "--model-type", "tiny", "--out", "{file}"], "is a file"),
        (["export", "countr", "--checkpoint", "{file}", "--out", "{file}"], "is a file"),
        (["segment", "--support", "{file}", "--support-mask", "{file}", "--out", "{file}", "{file}"], "is a file"),
    ],
)
def test_bad_output_arguments_fail_first_in_one_line(tmp_path, capsys, argv, needle):
    (tmp_path / "f.txt").write_text("x")
    argv = [a.format(tmp=tmp_path, file=tmp_path / "f.txt") for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0], err
    assert err[0].startswith(f"persense {' '.join(argv[:2]) if argv[0] == 'export' else argv[0]}: error:")


def test_logging_flags_work_after_the_command_too():
    from streamer.cli import build_parser

    args = build_parser().parse_args(["segment", "-v", "--out", "o", "q.png"])
    assert args.verbose is True and args.quiet is False
    args = build_parser().parse_args(["-q", "export", "sam", "--out", "o", "--random-weights", "1", "--model-type", "vit_b"])
    assert args.quiet is True and args.verbose is False


def test_a_broken_internal_import_is_not_disguised_as_a_missing_package(monkeypatch, tmp_path):
    from streamer import cli
    import streamer.cli.eval as eval_cli

    def broken(args):
        raise ModuleNotFoundError("No module named 'streamer.nope'", name="streamer.nope")

    monkeypatch.setattr(eval_cli, "run", broken)  # register() binds run when the parser is built
    with pytest.raises(ModuleNotFoundError):
        cli.main(["eval", "--data", str(tmp_path)])
