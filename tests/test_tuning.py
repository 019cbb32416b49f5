"""Optuna studies of alpha and temperature: tiny budgets, real SQLite and PostgreSQL storages, real worker processes."""

import csv
import glob
import itertools
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import pytest
import torch as th
import yaml
from stable_baselines3 import DQN

from sb3_distill import tuning, zoo
from sb3_distill.cli import build_parser, main
from sb3_distill.recipe import make_recipe
from sb3_distill.hyperparams_opt import search_space, size_search_space
from sb3_distill.tuning import OBJECTIVE_ATTR, fail_stale_trials, load_study_settings, open_storage, tune
from sb3_distill.tuning.objective import (
    DistillationObjective,
    ReferenceReturns,
    SizeSearchObjective,
    make_study_recipe,
    measure_references,
    prepare_teacher,
)
from sb3_distill.tuning.storage import SEARCH_SPACE_ATTR
from tests.study_polling import running_trial_numbers

REPO_ROOT = Path(__file__).resolve().parent.parent
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
STUDY_NAME = "distilled_dqn_CartPole-v1"
# A [8] student for 300 steps, two intermediate evaluations
TINY_ARGS = ["-n", "300", "-params", "policy_kwargs:dict(net_arch=[8])", "buffer_size:1000", "--eval-freq", "150"]


def sqlite_url(folder: Path) -> str:
    return f"sqlite:///{folder / 'studies.db'}"


def check_trials_in_range(trials: list[optuna.trial.FrozenTrial]) -> None:
    for trial in trials:
        assert trial.distributions == search_space()
        assert 0.0 <= trial.params["alpha"] <= 1.0
        assert 0.01 <= trial.params["temperature"] <= 10.0


@pytest.fixture(scope="module")
def first_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3-trial study with the default storage (a SQLite file in the log folder) and the shipped teacher."""
    log_folder = tmp_path_factory.mktemp("tuning")
    assert main(["tune", "--n-trials", "3", *TINY_ARGS, "--seed", "0", "-f", str(log_folder)]) == 0
    return log_folder


def test_three_trial_study_holds_alpha_and_temperature_in_range(first_study):
    study = optuna.load_study(study_name=STUDY_NAME, storage=sqlite_url(first_study))
    trials = study.get_trials()
    assert [trial.number for trial in trials] == [0, 1, 2]
    assert all(trial.state == optuna.trial.TrialState.COMPLETE for trial in trials)
    check_trials_in_range(trials)
    for trial in trials:
        assert trial.user_attrs["seed"] == trial.number  # --seed 0: trial n's student is seeded with n
        # Intermediate evaluations are reported for the pruner, at the environment step they were made
        assert len(trial.intermediate_values) >= 2
        assert all(step % 150 == 0 for step in trial.intermediate_values)
    # The study records what it optimizes, for resumed runs to be checked against
    assert study.user_attrs[OBJECTIVE_ATTR]["n_timesteps"] == 300
    assert study.user_attrs[OBJECTIVE_ATTR]["eval_episodes"] == 10


def test_a_trial_value_is_its_students_final_return_and_is_reproduced(first_study):
    """Trial 1 run again outside the study, with its parameters and seed, gives the study's value exactly."""
    study = optuna.load_study(study_name=STUDY_NAME, storage=sqlite_url(first_study))
    trial = study.trials[1]
    recipe = make_study_recipe(
        "CartPole-v1", hyperparams={"policy_kwargs": {"net_arch": [8]}, "buffer_size": 1000}, n_timesteps=300
    )
    objective = DistillationObjective(
        recipe, prepare_teacher(recipe, "cpu"), eval_freq=150, eval_episodes=10, seed=0, device="cpu"
    )
    value = objective(optuna.trial.FixedTrial(trial.params, number=trial.number))
    assert value == trial.value
    # A mean over 10 CartPole episodes, each of at least 8 steps (one reward per step)
    assert 8.0 <= value <= 500.0 and round(value * 10) == value * 10


def test_report_has_the_best_trial_and_valid_pngs(first_study):
    study = optuna.load_study(study_name=STUDY_NAME, storage=sqlite_url(first_study))
    report_dir = first_study / STUDY_NAME / "report_1"
    summary = json.loads((report_dir / "summary.json").read_text())
    assert summary["best"]["number"] == study.best_trial.number
    assert summary["best"]["value"] == pytest.approx(study.best_value)
    assert summary["trials"] == {"COMPLETE": 3}
    for name in ("optimization_history.png", "param_importances.png", "contour_alpha_temperature.png"):
        data = (report_dir / name).read_bytes()
        assert data.startswith(PNG_SIGNATURE) and len(data) > 5_000, name


def test_best_yaml_is_a_zoo_config_that_the_zoo_wrapper_trains(first_study, tmp_path):
    study = optuna.load_study(study_name=STUDY_NAME, storage=sqlite_url(first_study))
    config_file = first_study / STUDY_NAME / "report_1" / "distilled_dqn.yml"
    # Read back the way the Zoo reads it
    entry = make_recipe("CartPole-v1", conf_file=config_file).hyperparams
    assert entry["alpha"] == study.best_params["alpha"]
    assert entry["temperature"] == study.best_params["temperature"]
    assert Path(entry["teacher"]).is_absolute() and Path(entry["teacher"]).is_file()
    assert entry["n_timesteps"] == 300
    assert entry["policy_kwargs"] == {"net_arch": [8]}  # as the Zoo's -params evaluated it
    # The rest of the student comes from zoo_configs/distilled_dqn.yml
    assert entry["learning_rate"] == make_recipe("CartPole-v1").hyperparams["learning_rate"]

    zoo_args = ["--algo", "distilled_dqn", "--env", "CartPole-v1", "--conf-file", str(config_file), "-n", "300"]
    assert zoo.main(["train", *zoo_args, "-f", str(tmp_path), "--seed", "0", "--eval-freq", "-1"]) == 0
    run_dir = tmp_path / "distilled_dqn" / "CartPole-v1_1"
    student = DQN.load(run_dir / "CartPole-v1.zip")
    assert student.policy.q_net.q_net[0].out_features == 8
    with open(run_dir / "CartPole-v1" / "config.yml") as file_handler:
        saved = dict(yaml.load(file_handler, Loader=yaml.UnsafeLoader))
    assert saved["alpha"] == study.best_params["alpha"]
    assert saved["temperature"] == study.best_params["temperature"]


def test_running_the_same_command_again_continues_the_study(first_study, tmp_path, capsys):
    shutil.copy(first_study / "studies.db", tmp_path / "studies.db")
    first_report = (first_study / STUDY_NAME / "report_1" / "distilled_dqn.yml").read_bytes()
    assert main(["tune", "--n-trials", "2", *TINY_ARGS, "--seed", "0", "-f", str(tmp_path)]) == 0
    assert "Continuing study 'distilled_dqn_CartPole-v1': 3 trials so far" in capsys.readouterr().out
    study = optuna.load_study(study_name=STUDY_NAME, storage=sqlite_url(tmp_path))
    trials = study.get_trials()
    assert [trial.number for trial in trials] == [0, 1, 2, 3, 4]
    assert all(trial.state == optuna.trial.TrialState.COMPLETE for trial in trials)
    check_trials_in_range(trials)
    # The sampler is seeded after the trials so far: the new trials do not repeat the first ones
    assert len({(trial.params["alpha"], trial.params["temperature"]) for trial in trials}) == 5
    assert json.loads((tmp_path / STUDY_NAME / "report_1" / "summary.json").read_text())["trials"] == {"COMPLETE": 5}
    # The first run's outputs are left as they were
    assert (first_study / STUDY_NAME / "report_1" / "distilled_dqn.yml").read_bytes() == first_report
    assert not (first_study / STUDY_NAME / "report_2").exists()


def test_each_run_writes_a_new_report_folder(tmp_path):
    storage = sqlite_url(tmp_path)
    for _ in range(2):
        assert main(["tune", "--n-trials", "1", *TINY_ARGS, "--storage", storage, "-f", str(tmp_path / "out")]) == 0
    reports = sorted(path.name for path in (tmp_path / "out" / STUDY_NAME).iterdir())
    assert reports == ["report_1", "report_2"]
    # One complete trial: the history is drawn, importances and the landscape need two, and say so
    assert json.loads((tmp_path / "out" / STUDY_NAME / "report_1" / "summary.json").read_text())["skipped"] == {
        "param_importances": "needs at least 2 complete trials, the study has 1",
        "contour": "needs at least 2 complete trials, the study has 1",
    }
    assert (tmp_path / "out" / STUDY_NAME / "report_1" / "optimization_history.png").read_bytes().startswith(PNG_SIGNATURE)


@pytest.mark.parametrize(
    "url, shown",
    [
        ("not-a-database-url", "not-a-database-url"),
        ("sqlite:////nonexistent-folder/sub/studies.db", "sqlite:////nonexistent-folder/sub/studies.db"),
        ("postgresql://tuner:secret@127.0.0.1:1/optuna", "postgresql://tuner:***@127.0.0.1:1/optuna"),
    ],
)
def test_unreadable_storage_fails_before_any_trial(tmp_path, capsys, url, shown):
    args = ["tune", *TINY_ARGS, "--storage", url, "-f", str(tmp_path / "out")]
    assert main(args) == 2
    error = capsys.readouterr().err
    assert "Cannot open the Optuna storage" in error and repr(shown) in error
    assert "secret" not in error  # the password is not printed
    assert not (tmp_path / "out").exists()
    with pytest.raises(ValueError, match="Cannot open the Optuna storage"):
        tune(storage=url, n_timesteps=300, settings=load_study_settings(log_folder=str(tmp_path / "out")))


def test_study_with_another_search_space_is_refused(tmp_path, capsys):
    storage = sqlite_url(tmp_path)
    study = optuna.create_study(storage=storage, study_name="narrow", direction="maximize")
    narrow = {
        "alpha": optuna.distributions.FloatDistribution(0.0, 0.5),
        "temperature": optuna.distributions.FloatDistribution(0.01, 10.0, log=True),
    }
    study.add_trial(optuna.trial.create_trial(params={"alpha": 0.1, "temperature": 1.0}, distributions=narrow, value=20.0))
    assert main(["tune", *TINY_ARGS, "--storage", storage, "--study-name", "narrow", "-f", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert "'narrow'" in error and "another search space" in error and "alpha: FloatDistribution(high=0.5" in error
    assert len(optuna.load_study(study_name="narrow", storage=storage).trials) == 1  # no trial was run
    assert not (tmp_path / "out").exists()


def test_study_with_another_objective_is_refused(tmp_path, capsys):
    storage = sqlite_url(tmp_path)
    study = optuna.create_study(storage=storage, study_name="other", direction="maximize")
    assert (
        main(["tune", "--n-trials", "1", *TINY_ARGS, "--storage", storage, "--study-name", "other", "-f", str(tmp_path)]) == 0
    )
    # The same study with another budget: its values would not be comparable
    args = ["tune", *TINY_ARGS, "-n", "600", "--storage", storage, "--study-name", "other", "-f", str(tmp_path / "out")]
    assert main(args) == 2
    error = capsys.readouterr().err
    assert "another objective" in error and "n_timesteps: study 300, now 600" in error
    assert len(study.trials) == 1


def test_n_trials_below_one_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["tune", "--n-trials", "0", "-f", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "--n-trials: 0 is not a positive integer" in capsys.readouterr().err
    with pytest.raises(ValueError, match="n_trials=0 must be an integer >= 1"):
        load_study_settings(n_trials=0)
    assert not list(tmp_path.iterdir())


def test_fewer_than_ten_evaluation_episodes_are_refused(tmp_path, capsys):
    assert main(["tune", *TINY_ARGS, "--eval-episodes", "3", "-f", str(tmp_path)]) == 2
    assert "eval_episodes=3 must be an integer >= 10" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_searched_hyperparameters_cannot_be_fixed(tmp_path, capsys):
    assert main(["tune", *TINY_ARGS, "-f", str(tmp_path), "-params", "alpha:0.3"]) == 2
    assert "['alpha'] are what the study searches" in capsys.readouterr().err


def test_performance_entry_keeps_its_alpha_and_refuses_fixed_searched_values(tmp_path, capsys):
    config = tmp_path / "students.yml"
    entry = make_recipe("CartPole-v1").hyperparams
    config.write_text(yaml.safe_dump({"CartPole-v1": {**entry, "alpha": "performance", "alpha_0": 0.9}}))
    recipe = make_study_recipe("CartPole-v1", conf_file=config, n_timesteps=300)
    # alpha stays the performance-based one; alpha_0 and temperature are what each trial samples
    assert recipe.model_kwargs["alpha"] == "performance"
    assert "alpha_0" not in recipe.model_kwargs and "temperature" not in recipe.model_kwargs
    out = str(tmp_path / "out")
    assert main(["tune", *TINY_ARGS, "--conf-file", str(config), "-f", out, "-params", "alpha_0:0.3"]) == 2
    assert "['alpha_0'] are what the study searches (alpha_0, temperature)" in capsys.readouterr().err
    # A number for alpha makes it a constant-alpha study, which searches alpha
    assert main(["tune", *TINY_ARGS, "--conf-file", str(config), "-f", out, "-params", "alpha:0.3"]) == 2
    error = capsys.readouterr().err
    assert "['alpha'] are what the study searches (alpha, temperature)" in error and "alpha:\"'performance'\"" in error
    assert main(["tune", *TINY_ARGS, "-f", out, "-params", "alpha:'performance'", "alpha_0:0.3"]) == 2
    assert "['alpha_0'] are what the study searches" in capsys.readouterr().err
    config.write_text(yaml.safe_dump({"CartPole-v1": {**entry, "alpha": "performace"}}))
    assert main(["tune", *TINY_ARGS, "--conf-file", str(config), "-f", out]) == 2
    assert "alpha='performace': expected a number" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_student_hyperparameter_distilled_dqn_refuses_fails_before_the_study(tmp_path, capsys):
    assert main(["tune", *TINY_ARGS, "-f", str(tmp_path), "-params", "no_such_argument:1"]) == 2
    assert "no_such_argument" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_teacher_that_does_not_fit_the_env_is_refused_before_the_study(tmp_path, capsys):
    # A MountainCar teacher: 2 observations and 3 actions, CartPole has 4 and 2
    teacher_path = tmp_path / "mountaincar_teacher.zip"
    DQN("MlpPolicy", "MountainCar-v0", policy_kwargs=dict(net_arch=[8])).save(teacher_path)
    assert main(["tune", *TINY_ARGS, "--teacher", str(teacher_path), "-f", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert str(teacher_path) in error and "Discrete(3)" in error and "Discrete(2)" in error
    assert not (tmp_path / "out").exists()  # not even the storage was created


def test_missing_study_defaults_file_is_named_and_leaves_the_other_commands_alone(tmp_path, monkeypatch, capsys):
    missing = tmp_path / "tuning" / "study.yml"
    monkeypatch.setattr(tuning.settings, "STUDY_DEFAULTS_FILE", missing)
    assert main(["tune", *TINY_ARGS, "-f", str(tmp_path / "out")]) == 2
    assert str(missing) in capsys.readouterr().err
    assert build_parser().parse_args(["distill", "--alpha", "0.3"]).alpha == 0.3


def worker_command(*args: str) -> list[str]:
    return [sys.executable, str(REPO_ROOT / "tuning" / "tune_distill.py"), *args]


def worker_env() -> dict[str, str]:
    """The environment of a worker process: this checkout's package first, one torch thread (workers share the cores)."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), *filter(None, [env.get("PYTHONPATH")])])
    return env


@pytest.mark.slow
def test_trial_of_a_killed_worker_is_failed_and_retried(tmp_path):
    storage = sqlite_url(tmp_path)
    # Two updates per step from the first one, so that a trial lasts several seconds (it must still be running when the
    # worker is killed), with a learning rate so small that the student stays as bad as at the start (short evaluation
    # episodes); heartbeats every second
    args = ["-n", "4000", "-params", "policy_kwargs:dict(net_arch=[8])", "learning_rate:1e-7", "learning_starts:0"]
    args += ["train_freq:1", "gradient_steps:2"]
    args += ["--storage", storage, "--heartbeat-interval", "1", "--grace-period", "2", "--pruner", "none", "--seed", "0"]
    worker = subprocess.Popen(
        worker_command("--n-trials", "1", *args, "-f", str(tmp_path / "killed")),
        cwd=REPO_ROOT,
        env=worker_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 90
        running: list[int] = []
        while not running and worker.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
            running = running_trial_numbers(tmp_path / "studies.db", with_params=("alpha", "temperature"))
        stderr = worker.stderr.read().decode() if worker.poll() is not None else ""
        assert running, f"the worker never ran a trial: {stderr}"
        time.sleep(0.5)  # its heartbeat thread has started
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=30)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
        worker.stderr.close()
    study = optuna.load_study(study_name=STUDY_NAME, storage=storage)
    killed = study.trials[running[0]]  # as the worker left it
    assert killed.state == optuna.trial.TrialState.RUNNING  # nobody has noticed yet

    time.sleep(3.5)  # past the grace period
    settings = load_study_settings(heartbeat_interval=1, grace_period=2)
    study = optuna.load_study(study_name=STUDY_NAME, storage=open_storage(storage, settings))
    assert fail_stale_trials(study, settings) == [killed.number]
    trials = study.get_trials()
    assert trials[killed.number].state == optuna.trial.TrialState.FAIL
    (retry,) = [trial for trial in trials if trial.state == optuna.trial.TrialState.WAITING]
    assert optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(retry) == killed.number

    # The next run of the same command runs the retry: same parameters, and it completes
    assert main(["tune", "--n-trials", "1", *args, "-f", str(tmp_path / "rerun")]) == 0
    retried = optuna.load_study(study_name=STUDY_NAME, storage=storage).trials[retry.number]
    assert retried.state == optuna.trial.TrialState.COMPLETE
    assert retried.params == killed.params and retried.value is not None


def find_postgres_program(name: str) -> str | None:
    """A PostgreSQL server program: on the PATH, or where Debian's packages put it (newest version)."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda path: int(Path(path).parts[4]))
    return candidates[-1] if candidates else None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def postgres_url(request: pytest.FixtureRequest) -> str:
    """
    A real PostgreSQL server for this test: a new cluster in a temporary folder, on a free port of 127.0.0.1, stopped
    afterwards. The server refuses to run as root, so as root it runs as the ``postgres`` user that Debian's
    package creates (or a dedicated system user where there is none).
    """
    psycopg2 = pytest.importorskip("psycopg2", reason="psycopg2-binary is in the tests and tuning extras")
    initdb, pg_ctl = find_postgres_program("initdb"), find_postgres_program("pg_ctl")
    if initdb is None or pg_ctl is None:
        pytest.skip("PostgreSQL server programs (initdb, pg_ctl) are not installed: apt-get install postgresql")
    run_as: list[str] = []
    if os.geteuid() == 0:
        user = "postgres"
        try:
            pwd.getpwnam(user)
        except KeyError:
            user = "sb3distill-pg"
            subprocess.run(["useradd", "--system", "--no-create-home", user], check=False)
        run_as = ["runuser", "-u", user, "--"]
    # Outside pytest's root-only temporary folder, so that the server's user can reach it
    base = Path(tempfile.mkdtemp(prefix="sb3-distill-pg-"))
    if run_as:
        shutil.chown(base, user=run_as[2])
    data_dir, port = base / "data", free_port()

    def stop() -> None:
        subprocess.run([*run_as, pg_ctl, "-D", str(data_dir), "-m", "immediate", "-w", "stop"], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)

    request.addfinalizer(stop)
    subprocess.run(
        [*run_as, initdb, "-D", str(data_dir), "-U", "postgres", "--auth=trust", "--no-locale", "-E", "UTF8", "--no-sync"],
        check=True,
        capture_output=True,
    )
    options = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off"
    started = subprocess.run(
        [*run_as, pg_ctl, "-D", str(data_dir), "-l", str(base / "server.log"), "-o", options, "-w", "-t", "60", "start"],
        capture_output=True,
        text=True,
    )
    assert started.returncode == 0, started.stdout + started.stderr + (base / "server.log").read_text()
    connection = psycopg2.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres")
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute("CREATE DATABASE optuna")
    connection.close()
    return f"postgresql://postgres@127.0.0.1:{port}/optuna"


@pytest.mark.slow
def test_two_workers_share_one_study_in_postgresql(postgres_url, tmp_path):
    n_trials_per_worker = 2
    args = ["--n-trials", str(n_trials_per_worker), *TINY_ARGS, "--storage", postgres_url, "--study-name", "shared"]
    # Both workers write their reports into one folder: each gets its own numbered one
    workers = [
        subprocess.Popen(
            worker_command(*args, "-f", str(tmp_path)),
            cwd=REPO_ROOT,
            env=worker_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = []
    try:
        for worker in workers:
            outputs.append(worker.communicate(timeout=150)[0])
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    assert [worker.returncode for worker in workers] == [0, 0], "\n\n".join(outputs)

    study = optuna.load_study(study_name="shared", storage=postgres_url)
    trials = study.get_trials()
    finished = [trial for trial in trials if trial.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)]
    # The trials add up: none lost, none counted twice, none left running
    assert len(trials) == len(finished) == 2 * n_trials_per_worker
    assert sorted(trial.number for trial in trials) == list(range(2 * n_trials_per_worker))
    assert all(trial.value is not None for trial in trials if trial.state == optuna.trial.TrialState.COMPLETE)
    check_trials_in_range(trials)
    # Unseeded samplers: the workers did not sample the same parameters
    assert len({(trial.params["alpha"], trial.params["temperature"]) for trial in trials}) == len(trials)
    # Each worker ran its own trials (the study's user attributes hold no worker ids: the logs do)
    assert [len(re.findall(r"Trial \d+ (?:finished with value|pruned)", output)) for output in outputs] == [2, 2]
    assert sorted(path.name for path in (tmp_path / "shared").iterdir()) == ["report_1", "report_2"]


# Size searches (multi-objective studies): the student's architecture sampled with alpha and temperature
SIZE_ARGS = ["--objectives", "score", "params", *TINY_ARGS]


def hidden_layer_parameters(net_arch: list[int], n_inputs: int = 4, n_actions: int = 2) -> int:
    """Weights and biases of an MLP from CartPole's 4 observations through ``net_arch`` to its 2 actions, by hand."""
    sizes = [n_inputs, *net_arch, n_actions]
    return sum(fan_in * fan_out + fan_out for fan_in, fan_out in itertools.pairwise(sizes))


@pytest.fixture(scope="module")
def size_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3-trial size search (score and parameters) with the default storage and the shipped teacher."""
    log_folder = tmp_path_factory.mktemp("size_search")
    assert main(["tune", "--n-trials", "3", *SIZE_ARGS, "--seed", "0", "-f", str(log_folder)]) == 0
    return log_folder


def test_size_search_trials_store_the_score_and_the_real_parameter_count(size_study):
    study = optuna.load_study(study_name=STUDY_NAME, storage=sqlite_url(size_study))
    assert study.directions == [optuna.study.StudyDirection.MAXIMIZE, optuna.study.StudyDirection.MINIMIZE]
    trials = study.get_trials()
    assert len(trials) == 3 and all(trial.state == optuna.trial.TrialState.COMPLETE for trial in trials)
    references = study.user_attrs[tuning.REFERENCES_ATTR]
    assert references["teacher_parameters"] == 67_586
    assert references["teacher_return"] > references["random_return"]
    for trial in trials:
        assert trial.distributions == size_search_space()
        net_arch = [trial.params[f"width_{index}"] for index in range(trial.params["n_layers"])]
        assert 1 <= len(net_arch) <= 3 and set(net_arch) <= {4, 8, 16, 32, 64, 128, 256}
        assert trial.user_attrs["net_arch"] == net_arch
        assert len(trial.values) == 2
        assert trial.values[1] == trial.user_attrs["parameters"] == hidden_layer_parameters(net_arch)
        expected_score = (trial.user_attrs["mean_return"] - references["random_return"]) / (
            references["teacher_return"] - references["random_return"]
        )
        assert trial.values[0] == pytest.approx(expected_score)
        assert 0.0 <= trial.params["alpha"] <= 1.0 and 0.01 <= trial.params["temperature"] <= 10.0


def test_size_search_report_has_the_front_as_png_and_csv(size_study):
    study = optuna.load_study(study_name=STUDY_NAME, storage=sqlite_url(size_study))
    report_dir = size_study / STUDY_NAME / "report_1"
    data = (report_dir / "pareto_front.png").read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 5_000
    with open(report_dir / "pareto_front.csv") as file_handler:
        rows = list(csv.DictReader(file_handler))
    front = {trial.number: trial for trial in study.best_trials}
    assert sorted(int(row["trial"]) for row in rows) == sorted(front)
    for row in rows:
        trial = front[int(row["trial"])]
        assert int(row["parameters"]) == trial.values[1]
        assert float(row["score"]) == pytest.approx(trial.values[0])
        assert float(row["teacher_share"]) == pytest.approx(trial.values[1] / 67_586)
        assert row["net_arch"] == " ".join(map(str, trial.user_attrs["net_arch"]))
    # Smallest first
    assert [int(row["parameters"]) for row in rows] == sorted(int(row["parameters"]) for row in rows)


def crafted_size_search(storage: str, performance_alpha: bool = False) -> optuna.Study:
    """
    A size search with made-up results: trials 0-3 are [16] at 95%, [8] at 50%, [64, 64] at 100%, [32] at 92%, with
    alpha 0.5 (or alpha_0 0.5) and temperature 0.1.
    """
    study = optuna.create_study(storage=storage, study_name="crafted", directions=["maximize", "minimize"])
    weight = "alpha_0" if performance_alpha else "alpha"
    study.set_user_attr(
        tuning.REFERENCES_ATTR,
        {"teacher_return": 500.0, "random_return": 22.0, "teacher_parameters": 67_586, "n_episodes": 10},
    )
    for net_arch, score in (([16], 0.95), ([8], 0.5), ([64, 64], 1.0), ([32], 0.92)):
        widths = [*net_arch, 4, 4][:3]
        params = {
            weight: 0.5,
            "temperature": 0.1,
            "n_layers": len(net_arch),
            **{f"width_{i}": w for i, w in enumerate(widths)},
        }
        parameters = hidden_layer_parameters(net_arch)
        study.add_trial(
            optuna.trial.create_trial(
                params=params,
                distributions=size_search_space(performance_alpha),
                values=[score, parameters],
                user_attrs={"parameters": parameters, "net_arch": net_arch, "mean_return": 22.0 + score * 478.0},
            )
        )
    return study


def test_min_score_picks_the_smallest_qualifying_front_trial_and_its_yaml_trains(tmp_path, capsys):
    study = crafted_size_search(sqlite_url(tmp_path))
    # [32] at 92% is dominated by [16] at 95%: the front is [8], [16], [64, 64]
    assert sorted(trial.number for trial in study.best_trials) == [0, 1, 2]
    recipe = make_study_recipe("CartPole-v1", hyperparams={"buffer_size": 1000}, n_timesteps=300)
    settings = load_study_settings(objectives=("score", "params"), min_score=0.9, log_folder=str(tmp_path))
    report_dir = tmp_path / "report"
    report_dir.mkdir()
    summary = tuning.write_pareto_report(study, recipe, settings, "crafted.db", report_dir)
    assert summary["smallest"]["trial"] == 0 and summary["smallest"]["parameters"] == 114
    assert "Smallest student with a score >= 90%: trial 0, net_arch [16], 114 parameters" in capsys.readouterr().out
    assert tuning.smallest_reaching(study, 0.99).number == 2
    assert tuning.smallest_reaching(study, 0.4).number == 1

    config_file = report_dir / "smallest_student.yml"
    entry = yaml.safe_load(config_file.read_text())["CartPole-v1"]
    assert entry["policy_kwargs"] == "dict(net_arch=[16])"
    assert (entry["alpha"], entry["temperature"], entry["n_timesteps"]) == (0.5, 0.1, 300)
    assert Path(entry["teacher"]).is_absolute() and Path(entry["teacher"]).is_file()
    zoo_args = ["--algo", "distilled_dqn", "--env", "CartPole-v1", "--conf-file", str(config_file), "-n", "300"]
    assert zoo.main(["train", *zoo_args, "-f", str(tmp_path / "zoo"), "--seed", "0", "--eval-freq", "-1"]) == 0
    student = DQN.load(tmp_path / "zoo" / "distilled_dqn" / "CartPole-v1_1" / "CartPole-v1.zip")
    assert student.policy.q_net.q_net[0].out_features == 16
    assert len([layer for layer in student.policy.q_net.q_net if isinstance(layer, th.nn.Linear)]) == 2


def test_min_score_no_trial_reaches_fails_naming_the_best_score(tmp_path, capsys):
    study = crafted_size_search(sqlite_url(tmp_path))
    recipe = make_study_recipe("CartPole-v1", hyperparams={"buffer_size": 1000}, n_timesteps=300)
    settings = load_study_settings(objectives=("score", "params"), min_score=1.5, log_folder=str(tmp_path))
    with pytest.raises(ValueError, match=r"reaches --min-score 1.5 .*the best score is 100.0% \(trial 2\)"):
        tuning.write_pareto_report(study, recipe, settings, "crafted.db", tmp_path)
    assert (tmp_path / "pareto_front.csv").is_file() and not (tmp_path / "smallest_student.yml").exists()
    assert len(optuna.load_study(study_name="crafted", storage=sqlite_url(tmp_path)).trials) == 4  # the study is kept


def test_min_score_no_trial_reaches_exits_2_from_the_command(size_study, tmp_path, capsys):
    shutil.copy(size_study / "studies.db", tmp_path / "studies.db")
    assert main(["tune", "--n-trials", "1", *SIZE_ARGS, "--seed", "0", "-f", str(tmp_path), "--min-score", "2"]) == 2
    error = capsys.readouterr().err
    study = optuna.load_study(study_name=STUDY_NAME, storage=sqlite_url(tmp_path))
    best = max(study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)), key=lambda trial: trial.values[0])
    assert error.startswith("error: No trial") and len(error.strip().splitlines()) == 1
    assert f"the best score is {best.values[0]:.1%} (trial {best.number})" in error
    assert len(study.trials) == 4


def test_unknown_objective_is_refused_before_anything_is_made(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["tune", "--objectives", "score", "size", *TINY_ARGS, "-f", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert "invalid choice: 'size'" in error and "score" in error and "params" in error and "latency" in error
    assert main(["tune", "--objectives", "params", *TINY_ARGS, "-f", str(tmp_path / "out")]) == 2
    assert "expected 'score', 'score params' or 'score latency'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--objectives", "score", "params", "--min-score", "0"], "min_score=0.0 must be a normalized score in (0, 2]"),
        (["--objectives", "score", "params", "--min-score", "2.5"], "min_score=2.5 must be a normalized score in (0, 2]"),
        (["--min-score", "0.95"], "it needs a multi-objective study"),
    ],
)
def test_bad_min_score_is_refused(tmp_path, capsys, args, message):
    assert main(["tune", *args, *TINY_ARGS, "-f", str(tmp_path / "out")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_resumed_size_search_with_other_objectives_is_refused(size_study, tmp_path, capsys):
    shutil.copy(size_study / "studies.db", tmp_path / "studies.db")
    args = ["tune", "--n-trials", "1", *TINY_ARGS, "-f", str(tmp_path / "out")]
    assert main([*args, "--objectives", "score", "latency", "--storage", sqlite_url(tmp_path)]) == 2
    assert "another objective" in capsys.readouterr().err
    # The single-objective study of the same name: another number of directions
    assert main([*args, "--storage", sqlite_url(tmp_path)]) == 2
    assert "has the directions ['maximize', 'minimize'], but --objectives score needs ['maximize']" in capsys.readouterr().err
    assert len(optuna.load_study(study_name=STUDY_NAME, storage=sqlite_url(tmp_path)).trials) == 3


def test_latency_objective_stores_a_positive_latency(tmp_path):
    args = ["tune", "--n-trials", "1", "--objectives", "score", "latency", *TINY_ARGS, "-f", str(tmp_path)]
    assert main(args) == 0
    (trial,) = optuna.load_study(study_name=STUDY_NAME, storage=sqlite_url(tmp_path)).trials
    assert len(trial.values) == 2
    assert 0.0 < trial.values[1] == trial.user_attrs["latency_us"] < 1e6
    assert trial.user_attrs["parameters"] == hidden_layer_parameters(trial.user_attrs["net_arch"])
    with open(tmp_path / STUDY_NAME / "report_1" / "pareto_front.csv") as file_handler:
        (row,) = list(csv.DictReader(file_handler))
    assert float(row["latency_us"]) == pytest.approx(trial.values[1])


# Studies of QDagger's performance-based alpha: alpha stays "performance", alpha_0 and temperature are searched
PERFORMANCE_PARAMS = ["-params", "policy_kwargs:dict(net_arch=[8])", "buffer_size:1000", "alpha:'performance'"]
PERFORMANCE_ARGS = ["-n", "300", *PERFORMANCE_PARAMS, "--eval-freq", "150"]
PERFORMANCE_HYPERPARAMS = {"policy_kwargs": {"net_arch": [8]}, "buffer_size": 1000, "alpha": "performance"}


@pytest.fixture(scope="module")
def performance_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-trial study of a student with alpha "performance" (given with -params) and the shipped teacher."""
    log_folder = tmp_path_factory.mktemp("performance_tuning")
    assert main(["tune", "--n-trials", "2", *PERFORMANCE_ARGS, "--seed", "0", "-f", str(log_folder)]) == 0
    return log_folder


def recorded_students(recipe, monkeypatch: pytest.MonkeyPatch) -> list:
    """The models ``recipe.make_model`` builds from now on, in order."""
    students = []
    make_model = recipe.make_model

    def recording_make_model(*args, **kwargs):
        students.append(make_model(*args, **kwargs))
        return students[-1]

    monkeypatch.setattr(recipe, "make_model", recording_make_model)
    return students


def test_performance_study_samples_alpha_0_and_temperature(performance_study):
    study = optuna.load_study(study_name=STUDY_NAME, storage=sqlite_url(performance_study))
    trials = study.get_trials()
    assert len(trials) == 2 and all(trial.state == optuna.trial.TrialState.COMPLETE for trial in trials)
    for trial in trials:
        assert trial.distributions == search_space(performance_alpha=True)
        assert set(trial.distributions) == {"alpha_0", "temperature"}
        assert 0.0 <= trial.params["alpha_0"] <= 1.0 and 0.01 <= trial.params["temperature"] <= 10.0
        assert trial.user_attrs["performance_alpha"] is True
    assert set(study.user_attrs[SEARCH_SPACE_ATTR]) == {"alpha_0", "temperature"}
    assert study.user_attrs[OBJECTIVE_ATTR]["hyperparams"]["alpha"] == "performance"


def test_performance_trial_student_has_alpha_performance_with_the_sampled_alpha_0(performance_study, monkeypatch):
    """Trial 1 run again with its parameters: its student has alpha "performance" and the trial's alpha_0."""
    study = optuna.load_study(study_name=STUDY_NAME, storage=sqlite_url(performance_study))
    trial = study.trials[1]
    recipe = make_study_recipe("CartPole-v1", hyperparams=PERFORMANCE_HYPERPARAMS, n_timesteps=300)
    objective = DistillationObjective(
        recipe, prepare_teacher(recipe, "cpu"), eval_freq=150, eval_episodes=10, seed=0, device="cpu"
    )
    students = recorded_students(recipe, monkeypatch)
    assert objective(optuna.trial.FixedTrial(trial.params, number=trial.number)) == trial.value
    (student,) = students
    assert (student.alpha, student.alpha_0, student.temperature) == (
        "performance",
        trial.params["alpha_0"],
        trial.params["temperature"],
    )
    # A single-objective study measures no references: the student measured the returns its weight uses
    assert student.teacher_return is None and student.random_return is None
    assert student.performance_alpha.alpha_0 == trial.params["alpha_0"]
    assert student.performance_alpha.teacher_return > student.performance_alpha.random_return


def test_performance_study_best_entry_has_alpha_performance_and_alpha_0(performance_study):
    study = optuna.load_study(study_name=STUDY_NAME, storage=sqlite_url(performance_study))
    report_dir = performance_study / STUDY_NAME / "report_1"
    entry = make_recipe("CartPole-v1", conf_file=report_dir / "distilled_dqn.yml").hyperparams
    assert entry["alpha"] == "performance"
    assert entry["alpha_0"] == study.best_params["alpha_0"]
    assert entry["temperature"] == study.best_params["temperature"]
    assert entry["n_timesteps"] == 300 and entry["policy_kwargs"] == {"net_arch": [8]}
    # The landscape is alpha_0 against temperature
    assert (report_dir / "contour_alpha_temperature.png").read_bytes().startswith(PNG_SIGNATURE)


def test_resumed_study_with_the_other_kind_of_alpha_is_refused(performance_study, first_study, tmp_path, capsys):
    for source, args in ((performance_study, TINY_ARGS), (first_study, PERFORMANCE_ARGS)):
        storage = f"sqlite:///{tmp_path / f'{source.name}.db'}"
        shutil.copy(source / "studies.db", tmp_path / f"{source.name}.db")
        n_trials = len(optuna.load_study(study_name=STUDY_NAME, storage=storage).trials)
        assert main(["tune", "--n-trials", "1", *args, "--storage", storage, "-f", str(tmp_path / "out")]) == 2
        error = capsys.readouterr().err
        assert "another search space" in error and "alpha_0: FloatDistribution" in error
        assert len(optuna.load_study(study_name=STUDY_NAME, storage=storage).trials) == n_trials


def test_performance_size_search_gives_students_the_study_references(tmp_path, monkeypatch):
    args = ["tune", "--n-trials", "1", "--objectives", "score", "params", *PERFORMANCE_ARGS, "--seed", "0"]
    assert main([*args, "-f", str(tmp_path)]) == 0
    study = optuna.load_study(study_name=STUDY_NAME, storage=sqlite_url(tmp_path))
    (trial,) = study.get_trials()
    assert trial.state == optuna.trial.TrialState.COMPLETE
    assert trial.distributions == size_search_space(performance_alpha=True)
    references = ReferenceReturns(**study.user_attrs[tuning.REFERENCES_ATTR])
    # The trial run again with the study's references: the same values, and a student that measured nothing
    recipe = make_study_recipe("CartPole-v1", hyperparams=PERFORMANCE_HYPERPARAMS, n_timesteps=300)
    objective = SizeSearchObjective(
        recipe, prepare_teacher(recipe, "cpu"), references, ("score", "params"), eval_episodes=10, seed=0, device="cpu"
    )
    students = recorded_students(recipe, monkeypatch)
    assert objective(optuna.trial.FixedTrial(trial.params, number=trial.number)) == tuple(trial.values)
    (student,) = students
    assert (student.alpha, student.alpha_0) == ("performance", trial.params["alpha_0"])
    assert (student.teacher_return, student.random_return) == (references.teacher_return, references.random_return)
    assert student.performance_alpha.teacher_return == references.teacher_return
    assert student.performance_alpha.random_return == references.random_return


def test_performance_size_search_front_and_smallest_entry_have_alpha_0(tmp_path):
    study = crafted_size_search(sqlite_url(tmp_path), performance_alpha=True)
    recipe = make_study_recipe("CartPole-v1", hyperparams={"alpha": "performance", "buffer_size": 1000}, n_timesteps=300)
    settings = load_study_settings(objectives=("score", "params"), min_score=0.9, log_folder=str(tmp_path))
    summary = tuning.write_pareto_report(study, recipe, settings, "crafted.db", tmp_path)
    assert (summary["smallest"]["alpha"], summary["smallest"]["alpha_0"]) == ("performance", 0.5)
    with open(tmp_path / "pareto_front.csv") as file_handler:
        rows = list(csv.DictReader(file_handler))
    assert [(row["alpha"], float(row["alpha_0"])) for row in rows] == [("performance", 0.5)] * 3
    entry = make_recipe("CartPole-v1", conf_file=tmp_path / "smallest_student.yml").hyperparams
    assert (entry["alpha"], entry["alpha_0"], entry["temperature"]) == ("performance", 0.5, 0.1)
    assert entry["policy_kwargs"] == "dict(net_arch=[16])"


def test_the_alpha_only_sampler_samples_no_temperature():
    from sb3_distill.hyperparams_opt import convert_distilled_dqn_params, sample_distilled_alpha_params

    study = optuna.create_study()
    trial = study.ask()
    sampled = sample_distilled_alpha_params(trial)
    assert set(sampled) == {"alpha"} and 0.0 <= sampled["alpha"] <= 1.0
    assert convert_distilled_dqn_params(trial.params) == sampled


# Studies of the other students: `--algo` picks the student, its entry in zoo_configs/<algo>.yml and its search space
SAC_ARGS = ["--algo", "distilled_sac", "--env", "Pendulum-v1", "-n", "200", "--eval-freq", "200"]
SAC_ARGS += ["-params", "learning_starts:100", "buffer_size:1000", "batch_size:16", "policy_kwargs:dict(net_arch=[8])"]
# One rollout of 2 envs x 64 steps per update, two epochs
PPO_ARGS = ["--algo", "distilled_ppo", "--env", "CartPole-v1", "-n", "256", "--eval-freq", "128"]
PPO_ARGS += ["-params", "n_envs:2", "n_steps:64", "batch_size:64", "n_epochs:2", "policy_kwargs:dict(net_arch=[8])"]


@pytest.fixture(scope="module")
def sac_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-trial study of a SAC student on Pendulum-v1 with the shipped SAC teacher."""
    log_folder = tmp_path_factory.mktemp("sac_tuning")
    assert main(["tune", "--n-trials", "2", *SAC_ARGS, "--seed", "0", "-f", str(log_folder)]) == 0
    return log_folder


@pytest.fixture(scope="module")
def ppo_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-trial study of a PPO student on CartPole-v1 with the shipped DQN teacher."""
    log_folder = tmp_path_factory.mktemp("ppo_tuning")
    assert main(["tune", "--n-trials", "2", *PPO_ARGS, "--seed", "0", "-f", str(log_folder)]) == 0
    return log_folder


def test_sac_study_samples_alpha_alone(sac_study):
    study = optuna.load_study(study_name="distilled_sac_Pendulum-v1", storage=sqlite_url(sac_study))
    trials = study.get_trials()
    assert len(trials) == 2 and all(trial.state == optuna.trial.TrialState.COMPLETE for trial in trials)
    for trial in trials:
        assert trial.distributions == search_space(temperature=False)
        assert set(trial.params) == {"alpha"} and 0.0 <= trial.params["alpha"] <= 1.0
        # A mean over 10 Pendulum episodes: each return is between -16.3 * 200 and 0
        assert -3_300.0 < trial.value < 0.0
    assert set(study.user_attrs[SEARCH_SPACE_ATTR]) == {"alpha"}
    assert study.user_attrs[OBJECTIVE_ATTR]["algo"] == "distilled_sac"
    assert study.user_attrs[OBJECTIVE_ATTR]["n_timesteps"] == 200
    # One parameter: no alpha x temperature landscape, and the report says why
    summary = json.loads((sac_study / "distilled_sac_Pendulum-v1" / "report_1" / "summary.json").read_text())
    assert summary["algo"] == "distilled_sac"
    assert summary["skipped"]["contour"] == "the study searches alpha alone (distilled_sac's term has no temperature)"
    assert not (sac_study / "distilled_sac_Pendulum-v1" / "report_1" / "contour_alpha_temperature.png").exists()


def test_sac_study_best_entry_is_distilled_sac_yml_and_reads_back(sac_study):
    study = optuna.load_study(study_name="distilled_sac_Pendulum-v1", storage=sqlite_url(sac_study))
    report_dir = sac_study / "distilled_sac_Pendulum-v1" / "report_1"
    assert sorted(path.name for path in report_dir.glob("*.yml")) == ["distilled_sac.yml"]
    config_file = report_dir / "distilled_sac.yml"
    assert "python -m sb3_distill.zoo train --algo distilled_sac --env Pendulum-v1 --conf-file" in config_file.read_text()
    recipe = make_recipe("Pendulum-v1", "distilled_sac", conf_file=config_file)
    assert recipe.hyperparams["alpha"] == recipe.model_kwargs["alpha"] == study.best_params["alpha"]
    assert "temperature" not in recipe.hyperparams
    assert recipe.n_timesteps == 200 and recipe.model_kwargs["learning_starts"] == 100
    assert recipe.net_arch == [8]
    assert Path(recipe.teacher).samefile(REPO_ROOT / "zoo_configs" / "teachers" / "Pendulum-v1_sac.zip")
    # The rest of the student comes from zoo_configs/distilled_sac.yml
    assert recipe.hyperparams["learning_rate"] == make_recipe("Pendulum-v1", "distilled_sac").hyperparams["learning_rate"]


def test_sac_study_refuses_a_fixed_alpha_but_not_the_temperature_it_does_not_search(tmp_path, capsys):
    assert main(["tune", *SAC_ARGS, "alpha:0.3", "-f", str(tmp_path)]) == 2
    assert "['alpha'] are what the study searches (alpha):" in capsys.readouterr().err
    # Not searched, so not refused as searched: DistilledSAC itself refuses it, before the study
    assert main(["tune", *SAC_ARGS, "temperature:0.5", "-f", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert "temperature" in error and "are what the study searches" not in error
    assert not list(tmp_path.iterdir())


def test_ppo_study_samples_alpha_and_temperature_and_writes_distilled_ppo_yml(ppo_study):
    study = optuna.load_study(study_name="distilled_ppo_CartPole-v1", storage=sqlite_url(ppo_study))
    trials = study.get_trials()
    assert len(trials) == 2 and all(trial.state == optuna.trial.TrialState.COMPLETE for trial in trials)
    check_trials_in_range(trials)
    for trial in trials:
        # Intermediate evaluations every 128 environment steps (one per rollout of 2 envs x 64 steps)
        assert sorted(trial.intermediate_values) == [128, 256]
    assert study.user_attrs[OBJECTIVE_ATTR]["algo"] == "distilled_ppo"
    report_dir = ppo_study / "distilled_ppo_CartPole-v1" / "report_1"
    config_file = report_dir / "distilled_ppo.yml"
    assert "--algo distilled_ppo --env CartPole-v1" in config_file.read_text()
    recipe = make_recipe("CartPole-v1", "distilled_ppo", conf_file=config_file)
    assert recipe.model_kwargs["alpha"] == study.best_params["alpha"]
    assert recipe.model_kwargs["temperature"] == study.best_params["temperature"]
    assert (recipe.n_envs, recipe.model_kwargs["n_steps"], recipe.n_timesteps, recipe.net_arch) == (2, 64, 256, [8])
    assert (report_dir / "contour_alpha_temperature.png").read_bytes().startswith(PNG_SIGNATURE)


def test_a_study_of_another_student_under_the_same_name_is_refused(ppo_study, tmp_path, capsys):
    shutil.copy(ppo_study / "studies.db", tmp_path / "studies.db")
    args = ["tune", *TINY_ARGS, "--study-name", "distilled_ppo_CartPole-v1", "--storage", sqlite_url(tmp_path)]
    assert main([*args, "-f", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert "another objective" in error and "algo: study 'distilled_ppo', now 'distilled_dqn'" in error
    assert not (tmp_path / "out").exists()


def test_a_study_recorded_before_other_students_continues_as_distilled_dqn(first_study, tmp_path):
    shutil.copy(first_study / "studies.db", tmp_path / "studies.db")
    study = optuna.load_study(study_name=STUDY_NAME, storage=sqlite_url(tmp_path))
    recorded = dict(study.user_attrs[OBJECTIVE_ATTR])
    del recorded["algo"]  # as a study made by an earlier release recorded it
    study.set_user_attr(OBJECTIVE_ATTR, recorded)
    assert main(["tune", "--n-trials", "1", *TINY_ARGS, "--seed", "0", "-f", str(tmp_path)]) == 0
    assert len(optuna.load_study(study_name=STUDY_NAME, storage=sqlite_url(tmp_path)).trials) == 4


def test_ppo_size_search_counts_the_actor_of_the_sampled_net_arch(tmp_path):
    args = ["tune", "--n-trials", "1", "--objectives", "score", "params", *PPO_ARGS, "--seed", "0", "-f", str(tmp_path)]
    assert main(args) == 0
    study = optuna.load_study(study_name="distilled_ppo_CartPole-v1", storage=sqlite_url(tmp_path))
    (trial,) = study.get_trials()
    assert trial.distributions == size_search_space()
    net_arch = trial.user_attrs["net_arch"]
    # The acting network: the actor's layers and its action head, as a DQN's Q-network of the same layers (not the critic)
    assert trial.values[1] == trial.user_attrs["parameters"] == hidden_layer_parameters(net_arch)
    assert study.user_attrs[tuning.REFERENCES_ATTR]["teacher_parameters"] == 67_586


def test_sac_references_are_the_teachers_mean_action_return_and_its_actors_size():
    recipe = make_study_recipe("Pendulum-v1", "distilled_sac", n_timesteps=200)
    references = measure_references(recipe, prepare_teacher(recipe, "cpu"), n_episodes=10, seed=0, device="cpu")
    # The shipped teacher (zoo_configs/teachers/Pendulum-v1_sac.json): a [256, 256] SAC actor that swings the pendulum up
    assert references.teacher_parameters == 67_330
    assert references.teacher_return > -400.0 > -900.0 > references.random_return


def test_tune_and_the_zoo_sample_the_same_parameters_for_every_student():
    from rl_zoo3 import hyperparams_opt as zoo_hyperparams_opt

    from sb3_distill.algorithms import STUDENT_ALGOS
    from sb3_distill.hyperparams_opt import distillation_sampler, has_temperature

    zoo.register()
    for algo in STUDENT_ALGOS:
        assert zoo_hyperparams_opt.HYPERPARAMS_SAMPLER[algo] is distillation_sampler(algo)
    assert [algo for algo in STUDENT_ALGOS if not has_temperature(algo)] == ["distilled_sac", "distilled_td3"]


def test_tune_refuses_a_teacher_algorithm_as_the_student():
    with pytest.raises(ValueError, match="algo='dqn' is not a student algorithm"):
        make_study_recipe("CartPole-v1", "dqn")
