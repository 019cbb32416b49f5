"""Which teacher teaches which student, with which term: the table, the defaults and the refusals (no environment)."""

from types import SimpleNamespace

import pytest

from sb3_distill.common.pairs import (
    CONTINUOUS_KINDS,
    DISCRETE_KINDS,
    TERMS,
    check_teacher_pair,
    compatibility_rows,
    resolve_distill_loss,
)


def fake_teacher(kind: str, algorithm: str = "SAC", source: str = "'teachers/t.zip'") -> SimpleNamespace:
    return SimpleNamespace(kind=kind, algorithm=algorithm, source=source)


@pytest.mark.parametrize(
    "student, kind, expected",
    [
        ("DQN", "q_values", "kl"),
        ("QRDQN", "quantiles", "kl"),
        ("PPO", "logits", "kl"),
        ("PPO", "gaussian", "kl"),
        ("PPO", "squashed_gaussian", "mse"),
        ("SAC", "squashed_gaussian", "kl"),
        ("SAC", "gaussian", "mse"),
        ("SAC", "deterministic", "mse"),
        ("TD3", "squashed_gaussian", "mse"),
    ],
)
def test_none_picks_the_pairs_default(student, kind, expected):
    assert resolve_distill_loss(student, fake_teacher(kind), None) == expected


def test_a_chosen_term_is_kept_where_the_pair_has_it():
    assert resolve_distill_loss("SAC", fake_teacher("squashed_gaussian"), "reverse_kl") == "reverse_kl"
    assert resolve_distill_loss("PPO", fake_teacher("gaussian", "PPO"), "ppd") == "ppd"


def test_a_td3_teacher_asked_for_a_kl_term_is_refused_naming_the_file_and_the_pair():
    with pytest.raises(
        ValueError, match=r"distill_loss='kl' does not apply to a TD3 teacher .*teachers/t\.zip.* SAC student: a deterministic"
    ):
        check_teacher_pair("SAC", fake_teacher("deterministic", "TD3"), "kl")


def test_a_td3_student_takes_no_kl():
    with pytest.raises(ValueError, match=r"TD3 student's policy is deterministic.*\['mse'\]"):
        check_teacher_pair("TD3", fake_teacher("squashed_gaussian"), "kl")


def test_a_discrete_teacher_for_a_continuous_student_is_refused_saying_what_works():
    with pytest.raises(ValueError, match=r"DQN teacher \(DQN\), which cannot teach a SAC student.*SAC/TQC"):
        check_teacher_pair("SAC", fake_teacher("q_values", "DQN"), None)
    with pytest.raises(ValueError, match=r"SAC teacher .*cannot teach a DQN student"):
        check_teacher_pair("DQN", fake_teacher("squashed_gaussian"), None)


def test_an_unknown_term_is_refused_before_any_teacher():
    with pytest.raises(ValueError, match=r"distill_loss='nll' is not a distillation term of a SAC student"):
        check_teacher_pair("SAC", fake_teacher("squashed_gaussian"), "nll")


def test_the_table_covers_every_student_and_kind():
    rows = compatibility_rows()
    assert len(rows) == len(TERMS) * len(DISCRETE_KINDS + CONTINUOUS_KINDS)
    refused = {(student, family) for student, family, terms in rows if terms == "refused"}
    # DQN and QR-DQN students refuse the 3 continuous kinds, SAC and TD3 the 3 discrete ones; PPO takes all 6
    assert len(refused) == 2 * 3 + 2 * 3
    assert all(terms != "refused" for student, _, terms in rows if student == "PPO")
