"""test-artifacts/ holds screenshots of this run's failed browser tests, and nothing else."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from tests.e2e import conftest as e2e


class FakePage:
    """Stands in for a Playwright page: ``screenshot`` writes a file where it is told."""

    def screenshot(self, path: str, full_page: bool) -> None:
        Path(path).write_bytes(b"\x89PNG fake")


def node(name: str, failed: bool | None) -> SimpleNamespace:
    """A test item as the report hook leaves it (no ``rep_call`` when setup failed)."""
    item = SimpleNamespace(name=name)
    if failed is not None:
        item.rep_call = SimpleNamespace(failed=failed)
    return item


def test_a_screenshot_only_for_a_failed_test(tmp_path, monkeypatch):
    monkeypatch.setattr(e2e, "ARTIFACTS", tmp_path / "artifacts")
    assert e2e.screenshot_if_failed(node("test_passes", False), FakePage()) is None
    assert e2e.screenshot_if_failed(node("test_setup_broke", None), FakePage()) is None
    assert not (tmp_path / "artifacts").exists() or not list((tmp_path / "artifacts").iterdir())

    saved = e2e.screenshot_if_failed(node("test_fails[ops]", True), FakePage())
    assert saved == tmp_path / "artifacts" / "test_fails_ops.png" and saved.exists()
    assert sorted(p.name for p in (tmp_path / "artifacts").iterdir()) == ["test_fails_ops.png"]


def test_screenshots_of_an_earlier_run_are_cleared(tmp_path, monkeypatch):
    folder = tmp_path / "artifacts"
    folder.mkdir()
    (folder / "old_failure.png").write_bytes(b"png")
    (folder / "notes.txt").write_text("kept")
    monkeypatch.setattr(e2e, "ARTIFACTS", folder)
    e2e.clear_screenshots()
    assert [p.name for p in folder.iterdir()] == ["notes.txt"]
