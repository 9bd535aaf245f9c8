"""Steps about the suite's own safety: it only ever runs against paper accounts."""

from behave import given, then, when

from support import claims
from support.drivers.ib import IbDriver, LiveAccountError
from support.targets import start_lone_gateway


@when("the suite checks the account the gateway is logged in to")
def step_check_account(context):
    w = context.world
    w.seen.accounts = tuple(w.ib.ensure_paper_account(w.settings.squatter_client_id_base + 2))


@then("it is a paper account")
def step_paper(context):
    claims.paper_accounts_only(context.world.seen.accounts)


@given('a gateway logged in to the live account "{account}"')
def step_live_gateway(context, account):
    process = start_lone_gateway(account, context.world.settings.reports_dir / "logs" / "latest")
    context.add_cleanup(process.stop)
    context.world.seen.live_ib = live_ib = IbDriver("127.0.0.1", int(process.ready["port"]))
    context.add_cleanup(live_ib.close)


@when("the suite checks the account that gateway is logged in to")
def step_check_live(context):
    w = context.world
    try:
        w.seen.accounts = tuple(w.seen.live_ib.ensure_paper_account(w.settings.squatter_client_id_base + 2))
    except LiveAccountError as exc:
        w.seen.refusal = exc


@then("the suite refuses to run against it")
def step_refused(context):
    claims.refused_live_account(context.world)
