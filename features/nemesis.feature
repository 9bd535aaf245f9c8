@nemesis @together @uses.sync_data_load @uses.async_data_load @uses.cached_data @uses.api_cleanup @uses.resilience_report
Feature: Exhaustive means exhaustive: the contract holds under a seeded schedule of overlapping faults
  One planned fault per scenario proves one claim at a time; bugs that need two faults at once pass them all.
  A seeded nemesis interleaves silence, unanswered requests, latency, restarts, resets, refusals, IB notices
  1100/1101/1102, pacing, client-ID squatters and cleanups with a mixed workload of discoveries, loads, CLI
  commands and health and resilience reads. Every claim below is judged over the whole recorded history; a
  failure names its seed and its schedule file, which "ib-resilience nemesis --replay" runs again.

  Background:
    Given the gateway answers
    And the API answers

  Rule: no request is left hanging, whatever overlaps

    @exhaustive @needs.fault_proxy @needs.gateway_control @needs.ib_history
    Scenario: Every request answers within its bound under overlapping faults
      When the nemesis runs the fault schedule of seed 11 for 3 minutes
      Then every request of the run was answered within its bound

  Rule: the score tells the truth about every outage

    @exhaustive @needs.fault_proxy @needs.gateway_control @needs.ib_history
    Scenario: The score falls in every outage and comes back after every heal
      When the nemesis runs the fault schedule of seed 11 for 3 minutes
      Then the score fell below healthy in every outage and was healthy again after every heal

  Rule: nothing is left behind

    @exhaustive @needs.fault_proxy @needs.gateway_control @needs.ib_history
    Scenario: The pool limit holds under overlapping faults
      When the nemesis runs the fault schedule of seed 11 for 3 minutes
      Then the backend never held more IB connections at once than its pool allows

    @exhaustive @needs.fault_proxy @needs.gateway_control @needs.ib_history
    Scenario: Cleanups release every client ID under overlapping faults
      When the nemesis runs the fault schedule of seed 11 for 3 minutes
      Then no client ID stayed held after any cleanup

  Rule: what is cached is what IB served

    @exhaustive @needs.fault_proxy @needs.gateway_control @needs.ib_history
    Scenario: Cached bars stay true under overlapping faults
      When the nemesis runs the fault schedule of seed 11 for 3 minutes
      Then every cached bar is a bar IB served

  Rule: nothing complains

    @exhaustive @needs.fault_proxy @needs.gateway_control @needs.ib_history @needs.backend_output
    Scenario: No warning, traceback or un-awaited coroutine under overlapping faults
      When the nemesis runs the fault schedule of seed 11 for 3 minutes
      Then no CLI transcript or backend output shows a warning, a traceback or an un-awaited coroutine

  Rule: service returns by itself

    @exhaustive @needs.fault_proxy @needs.gateway_control @needs.ib_history
    Scenario: Service is back within 10 seconds of the last heal
      When the nemesis runs the fault schedule of seed 11 for 3 minutes
      Then the backend served again within the recovery bound after the last heal
