@pool @stress
Feature: The connection pool holds up under stress and recovers
  Bursts of requests, far above the pool size, and rapid connect/cleanup cycles must neither exhaust
  IB Gateway nor leave connections behind. The pool never opens more connections than its limit, and
  the service is back within 10 seconds after the stress ends.

  Background:
    Given the gateway answers
    And the API answers
    And a symbol discovery succeeds

  Rule: the pool limit holds, whatever the load

    @standard @needs.ib_history
    Scenario: Concurrent load above the pool size
      Given the gateway answers everything 200 ms late
      When 15 clients discover symbols at the same time
      Then the requests met the required success rate
      And the gateway never saw more backend connections at once than the pool allows

    @standard @needs.ib_history @uses.api_cleanup
    Scenario: Rapid create and destroy cycles
      When clients discover a symbol and clean up the pool 10 times in a row
      Then the gateway never saw more backend connections at once than the pool allows
      And every request succeeded

  Rule: nothing is left behind and the service comes back

    @standard @needs.ib_history @uses.api_cleanup
    Scenario: Cleanup closes every connection the gateway saw
      Given 5 clients have discovered symbols at the same time
      When the backend cleans up its IB connections
      Then the cleanup reports as many closed connections as the gateway saw close
      And the gateway sees every backend connection close within 2 seconds

    @standard @uses.resilience_report
    Scenario: Service is back within 10 seconds after a burst
      When 30 clients discover symbols at the same time
      Then a client can discover a symbol again within the recovery bound
      And the resilience score is healthy again within the recovery bound

    @exhaustive @needs.ib_history
    Scenario: Sustained bursts
      When 5 bursts of 20 concurrent symbol discoveries run back to back
      Then the requests met the required success rate
      And the gateway never saw more backend connections at once than the pool allows
