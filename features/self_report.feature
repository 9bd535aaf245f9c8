@self_report
Feature: What the backend says about IB agrees with what IB saw
  Operators read the backend's own reports — IB status, IB configuration, IB health and the client-ID
  phase of the resilience report — to decide whether IB is reachable. A report built from constants or
  placeholders passes every shape check and tells nothing. Each report is judged against the connections
  and requests the gateway itself saw, never against its shape alone.

  Background:
    Given the gateway answers
    And the API answers
    And a symbol discovery succeeds

  Rule: the IB status describes the live connection

    @basic @needs.ib_history
    Scenario: The IB status names a connection the gateway has open
      When a client reads the IB status
      Then the IB status says connected, with a client ID the gateway has open for the backend
      And the IB status names the address the backend connects to IB through

  Rule: the IB configuration is the one in use

    @standard @needs.ib_history
    Scenario: The IB configuration reports the address and the client IDs in use
      When a client reads the IB configuration
      Then the configuration names the address the backend connects to IB through
      And the configuration's client-ID range holds every client ID the gateway accepted from the backend

  Rule: the client-ID phase is judged on the IDs IB accepted

    @standard @needs.ib_history @uses.resilience_report
    Scenario: The resilience report lists the client IDs the gateway has open
      When a client reads the resilience report
      Then the client IDs it lists in use are the ones the gateway has open for the backend
      And the client-ID phase reports working only if the backend holds the preferred client ID

  Rule: a healthy IB report is backed by a real round-trip to IB

    @basic @needs.ib_history
    Scenario: A healthy IB report comes with a server-time request the gateway answered
      When a client reads the IB health
      Then the answer says IB is healthy
      And the gateway answered the backend a server-time request while the report was made
