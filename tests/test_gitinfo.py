"""Git capture and the git policy, on real temporary repositories (``git init``, a bare origin)."""

from __future__ import annotations

import subprocess
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest

from aletheia.errors import GitPolicyError, ValidationError
from aletheia.tracking import gitinfo
from aletheia.tracking.gitinfo import GitInfo, GitPolicyWarning


@pytest.fixture(autouse=True)
def _isolated_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No user or system git config leaks in; commits need an identity."""
    empty = tmp_path / "gitconfig"
    empty.write_text("")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(empty))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for role in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{role}_NAME", "Ada")
        monkeypatch.setenv(f"GIT_{role}_EMAIL", "ada@example.com")


def git(cwd: Path, *args: str) -> str:
    """Run real git; return its stripped stdout."""
    done = subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True)
    return done.stdout.strip()


def commit_file(repo: Path, name: str, text: str, message: str = "change") -> str:
    (repo / name).write_text(text)
    git(repo, "add", name)
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture()
def origin(tmp_path: Path) -> Path:
    """A bare repository playing the remote."""
    path = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(path))
    return path


@pytest.fixture()
def repo(tmp_path: Path, origin: Path) -> Path:
    """A clone-like work tree: one commit on main, pushed to origin with upstream set."""
    path = tmp_path / "work"
    git(tmp_path, "init", "-q", "-b", "main", str(path))
    commit_file(path, "train.py", "print('train')\n", "first")
    git(path, "remote", "add", "origin", str(origin))
    git(path, "push", "-q", "-u", "origin", "main")
    return path


def capture_checked(path: Path, policy: str) -> tuple[GitInfo | None, list[str], str | None]:
    """Capture under ``policy``: (info or None if raised, warning texts, error text)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            info = gitinfo.capture(path, policy=policy)
        except GitPolicyError as exc:
            return None, [], str(exc)
    texts = [str(w.message) for w in caught if issubclass(w.category, GitPolicyWarning)]
    return info, texts, None


# --------------------------------------------------------------------------- scenarios


def _clean(repo: Path, tmp_path: Path) -> Path:
    return repo


def _tracked_change(repo: Path, tmp_path: Path) -> Path:
    (repo / "train.py").write_text("print('train harder')\n")
    return repo


def _staged_change(repo: Path, tmp_path: Path) -> Path:
    (repo / "model.py").write_text("W = 1\n")
    git(repo, "add", "model.py")
    return repo


def _untracked(repo: Path, tmp_path: Path) -> Path:
    (repo / "notes.py").write_text("x = 1\n")
    return repo


def _unpushed(repo: Path, tmp_path: Path) -> Path:
    commit_file(repo, "train.py", "print('v2')\n", "local only")
    return repo


def _no_upstream_new_commit(repo: Path, tmp_path: Path) -> Path:
    git(repo, "checkout", "-q", "-b", "feature")
    commit_file(repo, "feature.py", "F = 1\n", "feature work")
    return repo


def _no_remote(repo: Path, tmp_path: Path) -> Path:
    path = tmp_path / "lonely"
    git(tmp_path, "init", "-q", "-b", "main", str(path))
    commit_file(path, "a.py", "A = 1\n")
    return path


def _no_repo(repo: Path, tmp_path: Path) -> Path:
    path = tmp_path / "plain"
    path.mkdir()
    (path / "script.py").write_text("print(1)\n")
    return path


def _detached_pushed(repo: Path, tmp_path: Path) -> Path:
    git(repo, "checkout", "-q", "--detach")
    return repo


def _detached_unpushed(repo: Path, tmp_path: Path) -> Path:
    git(repo, "checkout", "-q", "--detach")
    commit_file(repo, "train.py", "print('detached')\n", "on a detached head")
    return repo


def _no_commit(repo: Path, tmp_path: Path) -> Path:
    path = tmp_path / "empty"
    git(tmp_path, "init", "-q", "-b", "main", str(path))
    return path


Scenario = Callable[[Path, Path], Path]

# scenario -> (text every warning/error must mention, or None when the tree is fine)
SCENARIOS: dict[str, tuple[Scenario, str | None]] = {
    "clean": (_clean, None),
    "tracked-change": (_tracked_change, "dirty"),
    "staged-change": (_staged_change, "dirty"),
    "untracked": (_untracked, "untracked: notes.py"),
    "unpushed": (_unpushed, "1 commit(s) ahead of origin/main"),
    "no-upstream-new-commit": (_no_upstream_new_commit, "not in any remote branch"),
    "no-remote": (_no_remote, "on no remote"),
    "no-repo": (_no_repo, "not in a git repository"),
    "detached-pushed": (_detached_pushed, None),
    "detached-unpushed": (_detached_unpushed, "not pushed"),
    "no-commit": (_no_commit, "no commit yet"),
}


@pytest.mark.parametrize("policy", ["warn", "strict", "off"])
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_policy(scenario: str, policy: str, repo: Path, tmp_path: Path) -> None:
    """warn → a warning naming the problem; strict → GitPolicyError; off → silence."""
    build, problem = SCENARIOS[scenario]
    path = build(repo, tmp_path)
    info, warned, error = capture_checked(path, policy)
    if problem is None:
        assert (error, warned) == (None, [])
        return
    if policy == "warn":
        assert error is None
        assert any(problem in text for text in warned), warned
    elif policy == "strict":
        assert info is None
        assert error is not None and problem in error
        assert "commit and push, or use git_policy='warn'" in error
    else:
        assert (error, warned) == (None, [])
        assert info is not None


# --------------------------------------------------------------------------- what is recorded


def test_clean_pushed_repo_is_recorded_fully(repo: Path, origin: Path) -> None:
    info = gitinfo.capture(repo, policy="strict")
    assert info.in_repo and info.root == str(repo)
    assert info.commit == git(repo, "rev-parse", "HEAD")
    assert (info.branch, info.detached, info.upstream) == ("main", False, "origin/main")
    assert info.remote == str(origin)
    assert (info.dirty, info.pushed, info.ahead, info.diff) == (False, True, 0, None)


def test_subdirectory_finds_the_repository(repo: Path) -> None:
    sub = repo / "src" / "pkg"
    sub.mkdir(parents=True)
    (sub / "__init__.py").write_text("")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "pkg")
    info = gitinfo.capture(sub, policy="off")
    assert info.root == str(repo)
    assert info.commit == git(repo, "rev-parse", "HEAD")


def test_tracked_and_staged_changes_are_in_the_diff(repo: Path, origin: Path) -> None:
    (repo / "train.py").write_text("print('unstaged edit')\n")
    (repo / "model.py").write_text("LAYERS = 12\n")
    git(repo, "add", "model.py")
    info = gitinfo.capture(repo, policy="off")
    assert info.dirty and info.changed == 2
    # policy off records only what is cheap: no diff
    assert info.diff is None
    info = _quiet_capture(repo)
    assert info.diff is not None
    assert "+print('unstaged edit')" in info.diff
    assert "+LAYERS = 12" in info.diff
    # the diff is a real patch: it applies to a fresh checkout of the recorded commit
    patch = repo.parent / "run.patch"
    patch.write_text(info.diff)
    fresh = repo.parent / "fresh"
    git(repo.parent, "clone", "-q", str(origin), str(fresh))
    git(fresh, "checkout", "-q", str(info.commit))
    git(fresh, "apply", str(patch))
    assert (fresh / "model.py").read_text() == "LAYERS = 12\n"
    assert (fresh / "train.py").read_text() == "print('unstaged edit')\n"


def _quiet_capture(path: Path, **kwargs: int) -> GitInfo:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GitPolicyWarning)
        return gitinfo.capture(path, policy="warn", **kwargs)


def test_untracked_files_make_the_tree_dirty_without_reading_them(repo: Path) -> None:
    data = repo / "data"
    data.mkdir()
    for i in range(30):
        (data / f"part-{i}.bin").write_bytes(b"\0" * 1000)
    (repo / "big.bin").write_bytes(b"x" * 5_000_000)
    info = _quiet_capture(repo)
    assert info.dirty and info.changed == 0
    # a new directory is one entry, not one per file; no contents in any diff
    assert sorted(info.untracked) == ["big.bin", "data/"]
    assert info.untracked_count == 2
    assert info.diff is None


def test_ignored_files_do_not_count(repo: Path) -> None:
    commit_file(repo, ".gitignore", "outputs/\n", "ignore outputs")
    git(repo, "push", "-q")
    (repo / "outputs").mkdir()
    (repo / "outputs" / "model.ckpt").write_bytes(b"weights")
    info = gitinfo.capture(repo, policy="strict")
    assert not info.dirty and info.untracked == ()


def test_untracked_list_is_capped_but_counted(repo: Path) -> None:
    for i in range(gitinfo.MAX_UNTRACKED + 20):
        (repo / f"scratch_{i}.py").write_text("")
    info = gitinfo.capture(repo, policy="off")
    assert len(info.untracked) == gitinfo.MAX_UNTRACKED
    assert info.untracked_count == gitinfo.MAX_UNTRACKED + 20


def test_huge_diff_is_cut_with_a_marker(repo: Path) -> None:
    (repo / "train.py").write_text("".join(f"line {i}\n" for i in range(50_000)))
    info = _quiet_capture(repo, max_diff_bytes=10_000)
    assert info.diff_truncated
    assert info.diff is not None
    body, _, tail = info.diff.partition("\n# aletheia: diff truncated after 10000 bytes")
    assert len(body.encode()) <= 10_000
    assert "git diff HEAD" in tail
    full = _quiet_capture(repo)
    assert not full.diff_truncated and full.diff is not None and full.diff.startswith(body)


def test_unpushed_commit_counts_commits_ahead(repo: Path) -> None:
    commit_file(repo, "a.py", "1\n")
    commit_file(repo, "b.py", "2\n")
    info = gitinfo.capture(repo, policy="off")
    assert (info.pushed, info.ahead, info.dirty) == (False, 2, False)
    git(repo, "push", "-q")
    assert gitinfo.capture(repo, policy="strict").pushed is True


def test_branch_without_upstream_is_pushed_if_a_remote_branch_has_the_commit(repo: Path) -> None:
    git(repo, "checkout", "-q", "-b", "experiment-7")
    info = gitinfo.capture(repo, policy="strict")
    assert (info.branch, info.upstream, info.pushed) == ("experiment-7", None, True)
    # the remote is still known, via origin
    assert info.remote is not None and info.remote.endswith("origin.git")


def test_no_remote_means_pushed_is_unknown(repo: Path, tmp_path: Path) -> None:
    path = _no_remote(repo, tmp_path)
    info = gitinfo.capture(path, policy="off")
    assert (info.remote, info.upstream, info.pushed) == (None, None, None)


def test_detached_head(repo: Path) -> None:
    first = git(repo, "rev-parse", "HEAD")
    commit_file(repo, "b.py", "B = 2\n")
    git(repo, "push", "-q")
    git(repo, "checkout", "-q", first)
    info = gitinfo.capture(repo, policy="strict")
    assert (info.commit, info.branch, info.detached, info.upstream) == (first, None, True, None)
    assert info.pushed is True


def test_not_in_a_repo_is_recorded_as_such(tmp_path: Path) -> None:
    info = gitinfo.capture(tmp_path, policy="off")
    assert info == GitInfo(in_repo=False)
    assert info.to_doc()["in_repo"] is False


def test_missing_path_says_so(tmp_path: Path) -> None:
    with pytest.warns(GitPolicyWarning, match="gone.py does not exist"):
        info = gitinfo.capture(tmp_path / "gone.py", policy="warn")
    assert not info.in_repo


def test_repo_without_commits(repo: Path, tmp_path: Path) -> None:
    path = _no_commit(repo, tmp_path)
    (path / "a.py").write_text("")
    info = gitinfo.capture(path, policy="off")
    assert (info.in_repo, info.commit, info.branch, info.dirty) == (True, None, "main", True)


def test_staged_rename_is_one_change(repo: Path) -> None:
    git(repo, "mv", "train.py", "fit.py")
    info = _quiet_capture(repo)
    assert info.changed == 1
    assert info.diff is not None and "rename to fit.py" in info.diff


def test_to_doc_has_no_diff_text(repo: Path) -> None:
    (repo / "train.py").write_text("SECRET_SAUCE = 42\n")
    info = _quiet_capture(repo)
    assert info.diff is not None and "SECRET_SAUCE" in info.diff
    doc = info.to_doc()
    assert "diff" not in doc
    assert "SECRET_SAUCE" not in repr(doc)
    assert doc["dirty"] is True and doc["commit"] == info.commit
    # Firestore-ready: plain scalars, lists and None only
    assert all(isinstance(v, (str, bool, int, list, type(None))) for v in doc.values())


def test_warning_points_at_the_calling_code(repo: Path) -> None:
    (repo / "train.py").write_text("edited\n")
    with pytest.warns(GitPolicyWarning, match="dirty") as caught:
        gitinfo.capture(repo, policy="warn")
    assert caught[0].filename == __file__


def test_unreadable_repository_is_reported_not_raised(repo: Path) -> None:
    (repo / ".git" / "index").write_bytes(b"not an index")
    info = gitinfo.capture(repo, policy="off")
    assert info.in_repo and info.error is not None and "index" in info.error
    with pytest.warns(GitPolicyWarning, match="git could not be read"):
        gitinfo.capture(repo, policy="warn")
    with pytest.raises(GitPolicyError, match="git could not be read"):
        gitinfo.capture(repo, policy="strict")


def test_unknown_policy_is_refused(repo: Path) -> None:
    with pytest.raises(ValidationError, match="unknown git policy"):
        gitinfo.capture(repo, policy="lenient")


# --------------------------------------------------------------------------- credentials


def test_credentials_are_stripped_from_the_recorded_remote(repo: Path) -> None:
    git(repo, "remote", "set-url", "origin", "https://ada:ghp_s3cr3t@github.com/team/model.git")
    info = gitinfo.capture(repo, policy="off")
    assert info.remote == "https://github.com/team/model.git"
    assert "s3cr3t" not in repr(info) and "s3cr3t" not in repr(info.to_doc())


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://user:token@github.com/o/r.git", "https://github.com/o/r.git"),
        ("https://ghp_token@github.com/o/r.git", "https://github.com/o/r.git"),
        ("https://github.com/o/r.git?access_token=abc", "https://github.com/o/r.git"),
        ("http://u:p@10.0.0.1:8080/r.git", "http://10.0.0.1:8080/r.git"),
        ("ssh://git:pw@host.example/o/r.git", "ssh://git@host.example/o/r.git"),
        ("ssh://git@host.example/o/r.git", "ssh://git@host.example/o/r.git"),
        ("git@github.com:o/r.git", "git@github.com:o/r.git"),
        ("https://github.com/o/r.git", "https://github.com/o/r.git"),
        ("/srv/git/r.git", "/srv/git/r.git"),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert gitinfo.redact_url(url) == expected


# --------------------------------------------------------------------------- cost


def git_commands(trace: Path) -> list[str]:
    """The git commands a capture ran, from git's own trace (GIT_TRACE)."""
    lines = trace.read_text().splitlines() if trace.exists() else []
    found = [
        line.split("trace: built-in: git ", 1)[1] for line in lines if "built-in: git " in line
    ]
    return [cmd.split()[0] for cmd in found if cmd != "version"]


@pytest.mark.parametrize(
    ("policy", "edit", "expected"),
    [
        ("strict", False, ["status"]),  # clean, with upstream: one git process
        ("warn", True, ["status", "diff"]),
        ("off", True, ["status"]),  # notebooks: only the cheap part
    ],
)
def test_git_processes_per_capture(
    repo: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    policy: str,
    edit: bool,
    expected: list[str],
) -> None:
    if edit:
        (repo / "train.py").write_text("print('edited')\n")
    trace = tmp_path / "trace.txt"
    monkeypatch.setenv("GIT_TRACE", str(trace))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GitPolicyWarning)
        gitinfo.capture(repo, policy=policy)
    assert git_commands(trace) == expected


def test_branch_without_upstream_costs_two_ref_scans(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    git(repo, "checkout", "-q", "-b", "topic")
    trace = tmp_path / "trace.txt"
    monkeypatch.setenv("GIT_TRACE", str(trace))
    assert gitinfo.capture(repo, policy="strict").pushed is True
    assert git_commands(trace) == ["status", "for-each-ref", "for-each-ref"]
