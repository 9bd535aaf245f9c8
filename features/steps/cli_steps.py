"""Steps about the operator's command line: exit codes, time, and what it printed."""

import shlex

from behave import then, when

from support import claims, cli_checks


def _give_up_s(w):
    """How long the suite lets a command run before killing it: the CLI bound plus a grace, so overruns are measured."""
    return w.settings.bound_s("cli_command_s") + 15.0


@when('the operator runs "{command}"')
def step_run(context, command):
    w = context.world
    w.seen.cli_runs.append(w.cli.run(shlex.split(command), timeout_s=_give_up_s(w)))


@when('the operator runs "{command}" against an API that is not running')
def step_run_no_api(context, command):
    w = context.world
    w.seen.cli_runs.append(cli_checks.run_without_api(w, shlex.split(command), _give_up_s(w)))


@when('{count:d} operators run "{command}" at the same time')
def step_run_concurrently(context, count, command):
    w = context.world
    w.seen.cli_runs += cli_checks.run_concurrently(w.cli, shlex.split(command), count,
                                                   _give_up_s(w))


@when('the operator starts "{command}" and presses Ctrl-C once it is running')
def step_interrupt(context, command):
    w = context.world
    w.seen.cli_runs.append(cli_checks.interrupt_once_fetching(w, shlex.split(command), w.settings.thresholds.cli_command_s))


@then("the command succeeds within the CLI bound")
def step_cli_ok(context):
    w = context.world
    cli_checks.succeeded(w.seen.last_cli_run, w.settings.bound_s("cli_command_s"))


@then("every command succeeds within the CLI bound")
def step_cli_all_ok(context):
    w = context.world
    for run in w.seen.cli_runs:
        cli_checks.succeeded(run, w.settings.bound_s("cli_command_s"))


@then("the command printed no warning, coroutine complaint or traceback")
@then("no command printed a warning, coroutine complaint or traceback")
def step_cli_clean(context):
    noisy = {run.argv: run.warnings for run in context.world.seen.cli_runs if run.warnings}
    assert not noisy, "the CLI printed:\n" + "\n".join(f"{' '.join(argv)}: {lines}" for argv, lines in noisy.items())


@then("the command fails with a clear message within the CLI bound")
def step_cli_fails(context):
    w = context.world
    cli_checks.failed_clearly(w.seen.last_cli_run, w.settings.bound_s("cli_command_s"))


@then("the command fails with a message that it could not connect to the API")
def step_cli_no_api(context):
    run = context.world.seen.last_cli_run
    assert run.exit_code == 1 and cli_checks.says_cannot_connect(run.output), f"expected exit 1 and a could-not-connect message:\n{run.describe()}"


@then("the command stops within the CLI bound")
def step_cli_stops(context):
    w = context.world
    run, bound_s = w.seen.last_cli_run, w.settings.bound_s("cli_command_s")
    assert not run.timed_out and run.exit_code is not None and run.elapsed_s <= bound_s, f"the command did not stop in time:\n{run.describe()}"


@then("the command's output shows the resilience score the API reports")
def step_cli_score(context):
    cli_checks.shows_live_score(context.world, context.world.seen.last_cli_run)


@then("the command's output changed with the gateway's state")
def step_cli_output_changed(context):
    first, last = context.world.seen.cli_runs[-2:]
    assert first.output.split() != last.output.split(), f"the same output before and after the fault:\n{last.describe()}"


@then("the gateway received a contract-details request from the backend while the command ran")
@then("the gateway received a contract-details request from the backend while each command ran")
def step_cli_asked_ib(context):
    for run in context.world.seen.cli_runs:
        cli_checks.asked_ib(context.world, run)


@then("the command did what it was asked")
def step_cli_did_its_job(context):
    cli_checks.did_its_job(context.world, context.world.seen.last_cli_run)


@then("the command reported as many closed connections as the gateway saw close")
def step_cli_cleanup_count(context):
    cli_checks.reported_gateway_closes(context.world, context.world.seen.last_cli_run)


@then('the command printed the last {rows:d} cached "{symbol}" {kind} bars')
def step_cli_printed_bars(context, rows, symbol, kind):
    cli_checks.printed_cached_bars(context.world, context.world.seen.last_cli_run, symbol, kind, rows)


@then("the data-load operation ends up cancelled")
def step_operation_cancelled(context):
    w = context.world
    operation_id = cli_checks.operation_id_in(w.seen.last_cli_run.output)
    assert operation_id, f"the CLI printed no operation ID:\n{w.seen.last_cli_run.describe()}"
    claims.operation_state(w.api, operation_id, ("cancelled",), 10.0, w.seen.responses)
