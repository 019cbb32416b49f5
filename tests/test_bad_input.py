"""
The bad-input sweep (#24 item 6): every subcommand of ``sb3-distill`` fed at least 30 bad inputs ends in one ``error:``
line naming the value, exit status 2, no traceback, and leaves nothing half-written.

Each case is a row of ``CASES``: the subcommand's arguments (``{files}`` is a folder of broken files made once, see
:func:`files`; ``{out}`` an empty output folder of the case) and a piece of the error line. The count of rows per
subcommand is in docs/command_line.md.
"""

import json
import shutil
import stat
import zipfile
from collections import Counter
from pathlib import Path

import pytest
from stable_baselines3 import DQN, PPO
from stable_baselines3.common.envs import IdentityEnvMultiDiscrete

from sb3_distill.cli import main
from sb3_distill.config import zoo_configs_dir

SHIPPED = str(zoo_configs_dir() / "teachers" / "CartPole-v1_dqn.zip")
PENDULUM_TEACHER = str(zoo_configs_dir() / "teachers" / "Pendulum-v1_sac.zip")
# Short runs, so that a case that wrongly trains ends soon (and is reported as not refused)
QUICK = ["-n", "200", "--no-progress-bar"]
DISTILL = [
    "distill",
    *QUICK,
    "--eval-episodes",
    "1",
    "--reference-episodes",
    "1",
    "--eval-freq",
    "200",
    "--curve-episodes",
    "1",
    "-f",
    "{out}",
]
TEACHER = ["teacher", *QUICK, "--eval-episodes", "1", "-o", "{out}/teacher.zip"]
TUNE = ["tune", "-n", "200", "--n-trials", "1", "-f", "{out}"]
EXPORT = ["export", "{files}/student.zip", "--format", "torchscript", "--n-check", "8", "--repeats", "0", "-o", "{out}/s.pt"]


def entry(student: bool = True, **values: object) -> str:
    """A Zoo-format config file's text: CartPole-v1's student (or teacher) with ``values`` in place of its settings."""
    base = {"n_timesteps": 200, "policy": "MlpPolicy", "policy_kwargs": "dict(net_arch=[8])"}
    if student:
        base["teacher"] = SHIPPED
    return json.dumps({"CartPole-v1": {**base, **values}})  # JSON is YAML


# (subcommand arguments, a piece of the error line)
CASES = {
    "distill": [
        (["--teacher", "{files}/missing.zip"], "missing.zip"),
        (["--teacher", ""], "teacher"),
        (["--teacher", "{files}/folder"], "folder"),
        (["--teacher", "{files}/empty.zip"], "empty.zip"),
        (["--teacher", "{files}/text.zip"], "text.zip"),
        (["--teacher", "{files}/no_policy.zip"], "no_policy.zip"),
        (["--teacher", "{files}/nan_teacher.zip"], "nan_teacher.zip"),
        (["--teacher", PENDULUM_TEACHER], "Pendulum-v1_sac.zip"),
        (["--teacher", "{files}/ppo_pendulum.zip"], "ppo_pendulum.zip"),
        (["--conf-file", "{files}/missing.yml"], "missing.yml"),
        (["--conf-file", "{files}/empty.yml"], "empty.yml"),
        (["--conf-file", "{files}/folder"], "folder"),
        (["--conf-file", "{files}/invalid.yml"], "invalid.yml"),
        (["--conf-file", "{files}/unknown_key.yml"], "not_a_setting"),
        (["--conf-file", "{files}/no_teacher.yml"], "teacher"),
        (["--conf-file", "{files}/string_alpha.yml"], "alpha"),
        (["-params", "alpha:'high'"], "alpha"),
        (["-params", "learning_rate:abc"], "learning_rate:abc"),
        (["-params", "novalue"], "novalue"),
        (["-params", "policy_kwargs:5"], "policy_kwargs"),
        (["-params", "not_a_setting:1"], "not_a_setting"),
        (["-params", "buffer_size:-1"], "buffer_size"),
        (["--alpha", "1.5"], "1.5"),
        (["--alpha", "-0.1"], "-0.1"),
        (["--alpha", "nan"], "nan"),
        (["--alpha", "x"], "'x'"),
        (["--temperature", "0"], "temperature"),
        (["--temperature", "-1"], "-1"),
        (["-n", "0"], "0 is not a positive integer"),
        (["-n", "-5"], "-5"),
        (["-n", "many"], "'many'"),
        (["--net-arch", "0"], "0 is not a positive integer"),
        (["--env", "CartPole-v2"], "CartPole-v2"),
        (["--env", ""], "env"),
        (["--algo", "distilled_foo"], "distilled_foo"),
        (["--algo", "dqn"], "'dqn'"),
        (["--eval-freq", "0"], "0 is not a positive integer"),
        (["--curve-episodes", "0"], "0 is not a positive integer"),
        (["--eval-episodes", "0"], "0 is not a positive integer"),
        (["--checkpoint-freq", "-1"], "-1 is not 0 or a positive integer"),
        (["--seed", "one"], "'one'"),
        (["--device", "gpu0"], "gpu0"),
        (["-f", "{files}/text.zip"], "text.zip"),
        (["-f", "{ro}"], "{ro}"),
        (["--resume", "{files}/missing_run"], "missing_run"),
        (["--resume", "{files}/folder"], "run.json"),
        (["--resume", "{files}/bad_run"], "run.json"),
        (["--resume", "{files}/teacher.run"], "not a run of sb3-distill distill"),
    ],
    "teacher": [
        (["--algo", "foo"], "'foo'"),
        (["--algo", "distilled_dqn"], "'distilled_dqn'"),
        (["-n", "0"], "0 is not a positive integer"),
        (["-n", "-1"], "-1"),
        (["-n", "1e9x"], "'1e9x'"),
        (["--env", "CartPole-v2"], "CartPole-v2"),
        (["--env", ""], "env"),
        (["--env", "NoSuchEnv"], "NoSuchEnv"),
        (["--conf-file", "{files}/missing.yml"], "missing.yml"),
        (["--conf-file", "{files}/empty.yml"], "empty.yml"),
        (["--conf-file", "{files}/folder"], "folder"),
        (["--conf-file", "{files}/invalid.yml"], "invalid.yml"),
        (["--conf-file", "{files}/unknown_teacher_key.yml"], "not_a_setting"),
        (["--conf-file", "{files}/broken.py"], "broken.py"),
        (["--conf-file", "{files}/config.txt"], "config.txt"),
        (["-params", "novalue"], "novalue"),
        (["-params", "learning_rate:abc"], "learning_rate:abc"),
        (["-params", "not_a_setting:1"], "not_a_setting"),
        (["-params", "policy_kwargs:5"], "policy_kwargs"),
        (["-params", "buffer_size:-1"], "buffer_size"),
        (["-params", "policy:'NoPolicy'"], "NoPolicy"),
        (["-params", "n_envs:0"], "n_envs"),
        (["-params", "learning_rate:'lin_abc'"], "lin_abc"),
        (["-o", "{files}/existing.zip"], "existing.zip"),
        (["-o", "{files}/folder"], "folder"),
        (["-o", "{ro}/teacher.zip"], "{ro}"),
        (["-o", ""], "output"),
        (["--eval-episodes", "0"], "0 is not a positive integer"),
        (["--seed", "1.5"], "'1.5'"),
        (["--device", "gpu0"], "gpu0"),
        (["--verbose", "loud"], "'loud'"),
        (["--resume", "{files}/missing.run"], "missing.run"),
        (["--resume", "{files}/folder"], "run.json"),
        (["--resume", "{files}/bad_run"], "run.json"),
        (["--resume", "{files}/distill_run"], "not a run of sb3-distill teacher"),
        (["--resume", "{files}/teacher.run", "-n", "500"], "'-n' cannot be given with it"),
    ],
    "tune": [
        (["--teacher", "{files}/missing.zip"], "missing.zip"),
        (["--teacher", "{files}/folder"], "folder"),
        (["--teacher", "{files}/text.zip"], "text.zip"),
        (["--teacher", PENDULUM_TEACHER], "Pendulum-v1_sac.zip"),
        (["--conf-file", "{files}/missing.yml"], "missing.yml"),
        (["--conf-file", "{files}/empty.yml"], "empty.yml"),
        (["--conf-file", "{files}/invalid.yml"], "invalid.yml"),
        (["--conf-file", "{files}/unknown_key.yml"], "not_a_setting"),
        (["--algo", "sac"], "'sac'"),
        (["--env", "CartPole-v2"], "CartPole-v2"),
        (["-n", "0"], "0 is not a positive integer"),
        (["--n-trials", "0"], "0 is not a positive integer"),
        (["--n-trials", "some"], "'some'"),
        (["--storage", "bogus://nowhere"], "bogus://nowhere"),
        (["--storage", "sqlite:///{files}/text.zip"], "text.zip"),
        (["--storage", "sqlite:///{files}/no_such_dir/studies.db"], "no_such_dir"),
        (["--study-name", ""], "study"),
        (["--sampler", "grid"], "'grid'"),
        (["--pruner", "hyperband"], "'hyperband'"),
        (["--objectives", "speed"], "'speed'"),
        (["--objectives", "params"], "score"),
        (["--min-score", "2"], "2"),
        (["--eval-episodes", "5"], "5"),
        (["--eval-freq", "0"], "0"),
        (["--n-jobs", "0"], "n_jobs"),
        (["--heartbeat-interval", "0"], "heartbeat_interval"),
        (["--grace-period", "-1"], "grace_period"),
        (["--max-retry", "-1"], "max_retry"),
        (["-params", "alpha:0.3"], "alpha"),
        (["-params", "novalue"], "novalue"),
        (["-params", "not_a_setting:1"], "not_a_setting"),
        (["-f", "{files}/text.zip"], "text.zip"),
        (["-f", "{ro}"], "{ro}"),
    ],
    "export": [
        (["{files}/missing.zip"], "missing.zip"),
        (["{files}/empty.zip"], "empty.zip"),
        (["{files}/folder"], "folder"),
        (["{files}/text.zip"], "text.zip"),
        (["{files}/no_policy.zip"], "no_policy.zip"),
        (["{files}/ppo_multi_discrete.zip"], "ppo_multi_discrete.zip"),
        (["{files}/nan_student.zip"], "nan_student.zip"),
        (["--format", "tflite"], "'tflite'"),
        (["--n-check", "1"], "n_check"),
        (["--n-check", "0"], "0 is not a positive integer"),
        (["--n-check", "many"], "'many'"),
        (["--tolerance", "0"], "tolerance"),
        (["--tolerance", "2"], "tolerance"),
        (["--tolerance", "nan"], "tolerance"),
        (["--tolerance", "small"], "'small'"),
        (["--repeats", "-1"], "repeats"),
        (["--repeats", "x"], "'x'"),
        (["--seed", "x"], "'x'"),
        (["-o", "{files}/existing.zip"], "existing.zip"),
        (["-o", "{files}/folder"], "folder"),
        (["-o", "{ro}/s.pt"], "{ro}"),
        (["-o", "{files}/text.zip/s.pt"], "text.zip"),
        (["--env", "CartPole-v2"], "CartPole-v2"),
        (["--env", "Pendulum-v1"], "Pendulum-v1"),
        (["--env", "MountainCar-v0"], "MountainCar-v0"),
        (["--env", ""], "env"),
        (["{files}/run_with_bad_comparison/student.zip"], "comparison.json"),
        (["{files}/run_with_wrong_env/student.zip"], "comparison.json"),
        (["{files}/run_with_list_comparison/student.zip"], "comparison.json"),
        (["{files}/student.zip", "{files}/student.zip"], "unrecognized arguments"),
    ],
}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The broken files of the sweep, made once."""
    folder = tmp_path_factory.mktemp("bad_input")
    (folder / "folder").mkdir()
    (folder / "empty.zip").write_bytes(b"")
    (folder / "empty.yml").write_text("")
    (folder / "text.zip").write_text("not a zip\n")
    (folder / "config.txt").write_text("CartPole-v1: {}\n")
    (folder / "invalid.yml").write_text("CartPole-v1: [unclosed\n")
    (folder / "broken.py").write_text("hyperparams = {oops\n")
    (folder / "unknown_key.yml").write_text(entry(not_a_setting=1))
    (folder / "unknown_teacher_key.yml").write_text(entry(student=False, not_a_setting=1))
    no_teacher = json.loads(entry())
    del no_teacher["CartPole-v1"]["teacher"]
    (folder / "no_teacher.yml").write_text(json.dumps(no_teacher))
    (folder / "string_alpha.yml").write_text(entry(alpha="lots"))
    (folder / "existing.zip").write_bytes(b"keep me")
    read_only = folder / "read_only"
    read_only.mkdir()
    read_only.chmod(stat.S_IRUSR | stat.S_IXUSR)
    READ_ONLY[0] = read_only if not writable(read_only) else Path("/sys") if not writable(Path("/sys")) else None
    # A DQN student of CartPole-v1, and broken copies of it
    student = DQN("MlpPolicy", "CartPole-v1", policy_kwargs=dict(net_arch=[8]), learning_starts=0)
    student.save(folder / "student.zip")
    with zipfile.ZipFile(folder / "student.zip") as source, zipfile.ZipFile(folder / "no_policy.zip", "w") as target:
        for item in source.infolist():
            if item.filename != "policy.pth":
                target.writestr(item, source.read(item.filename))
    for parameter in student.policy.parameters():
        parameter.data.fill_(float("nan"))
    student.save(folder / "nan_student.zip")
    shutil.copy(folder / "nan_student.zip", folder / "nan_teacher.zip")
    PPO("MlpPolicy", "Pendulum-v1", n_steps=64, policy_kwargs=dict(net_arch=[8])).save(folder / "ppo_pendulum.zip")
    # A zip that export refuses: an actor-critic with MultiDiscrete actions
    multi_discrete = PPO("MlpPolicy", IdentityEnvMultiDiscrete(2), n_steps=64, policy_kwargs=dict(net_arch=[8]))
    multi_discrete.save(folder / "ppo_multi_discrete.zip")
    for name, comparison in {
        "run_with_bad_comparison": "{not json",
        "run_with_wrong_env": json.dumps({"env_id": 42}),
        "run_with_list_comparison": json.dumps([1, 2]),
    }.items():
        (folder / name).mkdir()
        shutil.copy(folder / "student.zip", folder / name / "student.zip")
        (folder / name / "comparison.json").write_text(comparison)
    (folder / "bad_run").mkdir()
    (folder / "bad_run" / "run.json").write_text(json.dumps({"argv": "distill"}))
    for name, argv in {"distill_run": ["distill", *QUICK], "teacher.run": ["teacher", *QUICK, "-o", "teacher.zip"]}.items():
        (folder / name).mkdir()
        (folder / name / "run.json").write_text(json.dumps({"argv": argv, "cwd": str(folder)}))
    yield folder
    read_only.chmod(stat.S_IRWXU)


# A folder this process cannot write into: a read-only folder of the files, or for root (which writes anyway) /sys
READ_ONLY: list[Path | None] = [None]


def writable(folder: Path) -> bool:
    probe = folder / ".probe"
    try:
        probe.write_text("")
    except OSError:
        return False
    probe.unlink()
    return True


def fill(arguments: list[str], files: Path, out: Path) -> list[str]:
    return [
        argument.replace("{files}", str(files)).replace("{out}", str(out)).replace("{ro}", str(READ_ONLY[0]))
        for argument in arguments
    ]


BASE = {"distill": DISTILL, "teacher": TEACHER, "tune": TUNE, "export": EXPORT}
ROWS = [(command, arguments, expected) for command, cases in CASES.items() for arguments, expected in cases]


def snapshot(folder: Path) -> dict[str, int]:
    return {str(path.relative_to(folder)): path.stat().st_size for path in folder.rglob("*") if path.is_file()}


@pytest.mark.parametrize(("command", "arguments", "expected"), ROWS, ids=[f"{c}:{' '.join(a)[:60]}" for c, a, _ in ROWS])
def test_bad_input_ends_in_one_error_line(command, arguments, expected, files, tmp_path, capsys, monkeypatch):
    if "{ro}" in " ".join(arguments) and READ_ONLY[0] is None:
        pytest.skip("no folder here refuses this process's writes")
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    before = snapshot(files)
    argv = fill(BASE[command], files, out)
    if command == "export" and not arguments[0].startswith("-"):
        argv[1:2] = []  # the case names the student
    if arguments[0] == "--resume":
        argv = [command]  # a resumed run takes its own settings
    argv = argv + fill(arguments, files, out)
    try:
        status = main(argv)
    except SystemExit as exit_info:  # argparse's usage errors
        status = exit_info.code
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert status == 2, f"exit status {status}; stderr: {captured.err[-2000:]}"
    assert "Traceback" not in captured.err
    error_lines = [line for line in lines if "error:" in line]
    assert len(error_lines) == 1 and lines[-1] == error_lines[0], captured.err
    (expected,) = fill([expected], files, out)
    assert expected in error_lines[0], f"{expected!r} not named in {error_lines[0]!r}"
    # Nothing written: no output, no broken file touched
    assert snapshot(out) == {}, f"left behind: {snapshot(out)}"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["out"]
    assert snapshot(files) == before


def test_every_subcommand_has_at_least_30_cases():
    counts = Counter(command for command, _, _ in ROWS)
    assert all(counts[command] >= 30 for command in BASE), counts


def test_the_docs_give_the_sweep_count():
    text = (Path(__file__).resolve().parent.parent / "docs" / "command_line.md").read_text()
    counts = Counter(command for command, _, _ in ROWS)
    expected = f"{len(ROWS)} bad inputs ({', '.join(f'{command} {counts[command]}' for command in BASE)})"
    assert expected in text


def test_a_full_disk_while_checkpointing_ends_in_one_error_line_and_keeps_the_last_checkpoint(tmp_path, capsys, monkeypatch):
    from sb3_distill import DistilledDQN
    from sb3_distill.checkpoints import read_checkpoint

    monkeypatch.chdir(tmp_path)
    original = DistilledDQN.save_replay_buffer
    calls = []

    def fill_the_disk(self, path):
        calls.append(path)
        if len(calls) == 2:  # the second checkpoint: half a file, then no space left
            Path(path).write_bytes(b"half")
            raise OSError(28, "No space left on device")
        original(self, path)

    monkeypatch.setattr(DistilledDQN, "save_replay_buffer", fill_the_disk)
    argv = [*fill(DISTILL, tmp_path, Path("runs")), "-n", "600", "--checkpoint-freq", "200"]
    assert main(argv) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: Could not write the checkpoint of step 400")
    assert "No space left on device" in lines[0] and "the checkpoint of step 200 is kept" in lines[0]
    run_dir = tmp_path / "runs" / "CartPole-v1_1"
    checkpoint_dir, state = read_checkpoint(run_dir)
    assert state["num_timesteps"] == 200
    # No half-written checkpoint folder
    assert [path.name for path in (run_dir / "checkpoints").iterdir()] == [checkpoint_dir.name]
