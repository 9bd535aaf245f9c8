"""Steps about the operator's command line: exit codes, time, and what it printed."""

import shlex

from behave import then, when

from support import cli_claims


def _give_up_s(w):
    """How long the suite lets a command run before killing it: the CLI bound plus a grace, so overruns are measured."""
    return w.settings.bound("CLI", extra_s=15.0).seconds


@when('the operator runs "{command}"')
def step_run(context, command):
    w = context.world
    w.seen.cli_runs.append(w.cli.run(shlex.split(command), timeout_s=_give_up_s(w)))


@when('the operator runs "{command}" against an API that is not running')
def step_run_no_api(context, command):
    w = context.world
    w.seen.cli_runs.append(cli_claims.run_without_api(w, shlex.split(command), _give_up_s(w)))


@when('{count:d} operators run "{command}" at the same time')
def step_run_concurrently(context, count, command):
    w = context.world
    w.seen.cli_runs += cli_claims.run_concurrently(w.cli, shlex.split(command), count, _give_up_s(w))


@when('the operator starts "{command}" and presses Ctrl-C once it is running')
def step_interrupt(context, command):
    w = context.world
    w.seen.cli_runs.append(cli_claims.interrupt_once_fetching(w, shlex.split(command), w.settings.bound("CLI")))


@then("the command succeeds within {bound:Bound}")
def step_cli_ok(context, bound):
    w = context.world
    cli_claims.succeeded(w.seen.last_cli_run, w.settings.bound(bound))


@then("every command succeeds within {bound:Bound}")
def step_cli_all_ok(context, bound):
    w = context.world
    cli_claims.all_succeeded(w.timeline.runs(), w.settings.bound(bound))


@then("the command printed no warning, coroutine complaint or traceback")
@then("no command printed a warning, coroutine complaint or traceback")
def step_cli_clean(context):
    cli_claims.printed_no_complaint(context.world.timeline.runs())


@then("the command fails with a clear message within {bound:Bound}")
def step_cli_fails(context, bound):
    w = context.world
    cli_claims.failed_clearly(w.seen.last_cli_run, w.settings.bound(bound))


@then("the command fails with a message that it could not connect to the API")
def step_cli_no_api(context):
    cli_claims.could_not_connect(context.world.seen.last_cli_run)


@then("the command stops within {bound:Bound}")
def step_cli_stops(context, bound):
    w = context.world
    cli_claims.stopped_within(w.seen.last_cli_run, w.settings.bound(bound))


@then("the command's output shows the resilience score the API reports")
def step_cli_score(context):
    cli_claims.shows_live_score(context.world, context.world.seen.last_cli_run)


@then("the command's output changed with the gateway's state")
def step_cli_output_changed(context):
    before, after = context.world.seen.cli_runs[-2:]
    cli_claims.output_changed(before, after)


@then("the gateway received a contract-details request from the backend while the command ran")
@then("the gateway received a contract-details request from the backend while each command ran")
def step_cli_asked_ib(context):
    cli_claims.each_asked_ib(context.world, context.world.timeline.runs())


@then("the gateway answered historical-data requests from the backend while the command ran")
def step_cli_loaded_from_ib(context):
    cli_claims.loaded_from_ib(context.world, context.world.seen.last_cli_run)


@then("the command reported as many closed connections as the gateway saw close")
def step_cli_cleanup_count(context):
    cli_claims.reported_gateway_closes(context.world, context.world.seen.last_cli_run)


@then('the command printed the last {rows:d} cached "{symbol}" {kind} bars')
def step_cli_printed_bars(context, rows, symbol, kind):
    cli_claims.printed_cached_bars(context.world, context.world.seen.last_cli_run, symbol, kind, rows)


@then("the data-load operation ends up cancelled")
def step_operation_cancelled(context):
    cli_claims.operation_cancelled(context.world, context.world.seen.last_cli_run)
