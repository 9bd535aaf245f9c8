"""Steps about the suite's own safety: it only ever runs against paper accounts."""

from behave import given, then, when

from ibtargets.common.accounts import is_paper_account
from support.drivers.ib import IbDriver, LiveAccountError
from support.targets import start_lone_gateway


@when("the suite checks the account the gateway is logged in to")
def step_check_account(context):
    w = context.world
    w.seen.values["accounts"] = w.ib.ensure_paper_account(w.settings.squatter_client_id_base + 2)


@then("it is a paper account")
def step_paper(context):
    accounts = context.world.seen.values["accounts"]
    assert accounts and all(is_paper_account(a) for a in accounts), f"accounts {accounts}"


@given('a gateway logged in to the live account "{account}"')
def step_live_gateway(context, account):
    process = start_lone_gateway(account, context.world.settings.reports_dir / "logs" / "latest")
    context.add_cleanup(process.stop)
    context.world.seen.values["live_ib"] = live_ib = IbDriver("127.0.0.1", int(process.ready["port"]))
    context.add_cleanup(live_ib.close)


@when("the suite checks the account that gateway is logged in to")
def step_check_live(context):
    w = context.world
    try:
        w.seen.values["accounts"] = w.seen.values["live_ib"].ensure_paper_account(w.settings.squatter_client_id_base + 2)
    except LiveAccountError as exc:
        w.seen.values["refusal"] = exc


@then("the suite refuses to run against it")
def step_refused(context):
    refusal = context.world.seen.values.get("refusal")
    assert isinstance(refusal, LiveAccountError), f"the live account was accepted: {context.world.seen.values.get('accounts')}"
