"""Worker settings (`qc_worker.settings`): flags, their variables, their defaults in `--help`, validation."""

from __future__ import annotations

import asyncio
import dataclasses
import inspect

import pytest

from qc_common import worker_env
from qc_worker import __main__ as qc_worker_cli
from qc_worker import settings as settings_module
from qc_worker.settings import SettingsError, WorkerSettings, build_parser, from_args, run_on_event_loop
from qc_worker.tasks import TaskOptions, resolve_limits

REQUIRED = ["--task", "m:f", "--source", "rabbitmq", "--rabbitmq-url", "amqp://x", "--rabbitmq-queue", "q"]


def flags() -> dict[str, tuple[str, str]]:
    """flag -> (environment variable, help), as the parser declares them."""
    return {
        action.option_strings[0]: (action.help.rsplit("[$", 1)[1].rstrip("]"), action.help)
        for action in build_parser()._actions
        if action.help and "[$" in action.help
    }


def test_every_setting_is_a_flag_named_after_its_field() -> None:
    fields = [field.name for field in dataclasses.fields(WorkerSettings)]
    assert sorted(flags()) == sorted(f"--{name.replace('_', '-')}" for name in fields)


def test_every_flag_reads_a_variable_named_in_the_shared_contract() -> None:
    contract = {value for name, value in vars(worker_env).items() if name.isupper()}
    for flag, (variable, _) in flags().items():
        assert variable in contract, f"{flag} reads {variable}, which qc_common.worker_env does not name"
        # The contract's own rule: the variable is the flag upper-cased with a QC_ prefix.
        assert variable == "QC_" + flag.removeprefix("--").replace("-", "_").upper()
    # And none is spelled out as a literal in the settings module itself.
    assert '"QC_' not in inspect.getsource(settings_module)


def test_the_help_shows_each_default_of_the_dataclass() -> None:
    text = " ".join(build_parser().format_help().split())  # argparse wraps lines wherever it likes
    for field in dataclasses.fields(WorkerSettings):
        if field.default is dataclasses.MISSING or field.default == "":
            continue
        shown = f"{field.default:g}" if isinstance(field.default, float) else str(field.default)
        variable = flags()[f"--{field.name.replace('_', '-')}"][0]
        assert f"(default {shown}) [${variable}]" in text, field.name


def test_qc_worker_help_prints_them(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        qc_worker_cli.main(["--help"])
    assert exited.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert f"(default {WorkerSettings.concurrency}) [${worker_env.CONCURRENCY}]" in text


def test_a_variable_sets_the_default_and_a_flag_overrides_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(worker_env.CONCURRENCY, "3")
    monkeypatch.setenv(worker_env.LEASE_SECONDS, "45")
    assert from_args(REQUIRED).concurrency == 3
    assert from_args(REQUIRED).lease_seconds == 45.0
    assert from_args([*REQUIRED, "--concurrency", "5"]).concurrency == 5


def test_an_unset_setting_takes_the_dataclass_default(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in (value for name, value in vars(worker_env).items() if name.isupper()):
        monkeypatch.delenv(variable, raising=False)
    parsed = from_args(REQUIRED)
    defaults = WorkerSettings(task="m:f", source="rabbitmq", rabbitmq_url="amqp://x", rabbitmq_queue="q")
    assert parsed == defaults


@pytest.mark.parametrize(
    ("argv", "problem"),
    [
        (["--source", "rabbitmq"], "--task is required"),
        (["--task", "m:f", "--source", "kafka"], "--source must be pubsub or rabbitmq"),
        (["--task", "m:f", "--source", "pubsub"], "QC_PUBSUB_PROJECT and QC_PUBSUB_SUBSCRIPTION"),
        ([*REQUIRED, "--concurrency", "0"], "--concurrency must be at least 1"),
        ([*REQUIRED, "--lease-seconds", "601"], "--lease-seconds must be within 1-600"),
        ([*REQUIRED, "--event-loop", "trio"], "--event-loop must be uvloop or asyncio, not 'trio'"),
        ([*REQUIRED, "--rabbitmq-ca-file", "/ca.crt"], "QC_RABBITMQ_URL is not an amqps:// URL"),
        (
            [*REQUIRED, "--rabbitmq-client-cert-file", "/tls.crt"],
            "--rabbitmq-client-cert-file and --rabbitmq-client-key-file go together",
        ),
    ],
)
def test_invalid_settings_name_the_flag_or_the_variable(
    argv: list[str], problem: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in (value for name, value in vars(worker_env).items() if name.isupper()):
        monkeypatch.delenv(variable, raising=False)
    with pytest.raises(SettingsError, match=problem):
        from_args(argv)


def test_a_task_option_wins_over_the_setting_and_an_unset_one_falls_back_to_it() -> None:
    limits = resolve_limits(TaskOptions(time_limit_seconds=5), 300, 7)
    assert (limits.time_limit_seconds, limits.max_delivery_attempts) == (5, 7)


@pytest.mark.parametrize(
    ("value", "declare"), [("true", True), ("1", True), ("yes", True), ("false", False), ("0", False)]
)
def test_declaring_the_queue_is_an_explicit_boolean_from_flag_or_variable(
    value: str, declare: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert from_args(REQUIRED).rabbitmq_declare_queue is False  # by default the queue must exist
    assert from_args([*REQUIRED, "--rabbitmq-declare-queue", value]).rabbitmq_declare_queue is declare
    monkeypatch.setenv(worker_env.RABBITMQ_DECLARE_QUEUE, value)
    assert from_args(REQUIRED).rabbitmq_declare_queue is declare


def test_queue_arguments_are_a_json_object() -> None:
    arguments = '{"x-queue-type": "quorum", "x-delivery-limit": 5}'
    settings = from_args([*REQUIRED, "--rabbitmq-queue-arguments", arguments])
    assert settings.queue_arguments() == {"x-queue-type": "quorum", "x-delivery-limit": 5}
    assert from_args(REQUIRED).queue_arguments() == {}
    for bad in ("[1]", "{not json"):
        with pytest.raises(SettingsError, match="rabbitmq-queue-arguments must be a JSON object"):
            from_args([*REQUIRED, "--rabbitmq-queue-arguments", bad])
    with pytest.raises(SystemExit):
        from_args([*REQUIRED, "--rabbitmq-declare-queue", "maybe"])


async def loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


@pytest.mark.parametrize("event_loop", settings_module.EVENT_LOOPS)
def test_each_event_loop_choice_runs_the_worker_on_that_loop(event_loop: str) -> None:
    assert run_on_event_loop(event_loop, loop_module()).split(".")[0] == event_loop
