@phase2 @gc
Feature: Idle and dead connections are collected, busy ones never
  Connections the backend no longer needs must not pile up in IB Gateway (it accepts 32 clients at
  most). A health loop runs every health interval (60 s by default) and closes connections idle for
  longer than the idle timeout (300 s by default). Dead connections go at the next check. A connection
  in use is never collected.

  Background:
    Given the gateway answers
    And the API answers
    And a symbol discovery succeeds

  Rule: the defaults are KTRDR's: 300 s idle timeout, 60 s health interval

    @standard @fixture.backend.defaults @needs.backend_restart @uses.resilience_report @uses.idle_gc @uses.health_check_loop
    Scenario: A backend started without tuning reports the default timings
      When a client reads the resilience report
      Then the report states an idle timeout of 300 seconds
      And the report states a health-check interval of 60 seconds

    @exhaustive @fixture.backend.defaults @needs.backend_restart @needs.ib_history @uses.idle_gc
    Scenario: An idle connection is closed after the real 300 seconds
      Given a client has discovered a symbol
      When no client uses IB afterwards
      Then the gateway sees every backend connection close within the idle timeout plus two health intervals
      And no backend connection was closed before the idle timeout

  Rule: idle connections are closed after the idle timeout the backend reports
    The suite waits as long as the target's own timings require, up to its max_wait_s setting; a target
    whose idle timeout is longer skips these scenarios with that reason (compress its timings to run them).

    @basic @needs.ib_history @uses.idle_gc @uses.resilience_report
    Scenario: An idle connection is closed after the idle timeout
      Given a client has discovered a symbol
      When no client uses IB afterwards
      Then the gateway sees every backend connection close within the idle timeout plus two health intervals
      And no backend connection was closed before the idle timeout
      And the resilience report shows garbage collection working

    @standard @needs.gateway_control @uses.idle_gc @uses.sync_data_load
    Scenario: A connection in use is never collected, however long the request takes
      Given the gateway answers historical-data requests 3 idle timeouts late
      When a client loads "TSLA" daily bars from IB
      Then the data load succeeds
      And a historical-data request was in flight at IB for longer than the idle timeout
      And no backend connection closed while the request was running

  Rule: dead connections are removed at the next check

    @standard @needs.gateway_control @uses.health_check_loop
    Scenario: Connections the gateway dropped are removed from the pool
      Given a client has discovered a symbol
      When the gateway drops every client connection
      Then within two health intervals the pool holds no connections the gateway dropped
      And a client can discover a symbol again within the recovery bound
