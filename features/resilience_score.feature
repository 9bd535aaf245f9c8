@score
Feature: The resilience score tells the truth about the IB connection
  Operators alert on the resilience report: a score of at least 75 means healthy, below 75 is an alert,
  below 65 infrastructure trouble. The score must come from live evidence: with the gateway silent,
  gone or restarting it falls below 75 within 5 seconds, and it is back to 75 or more within 10 seconds
  of recovery. A score that stays at 100 with no gateway is the bug this suite exists to catch.

  Background:
    Given the gateway answers
    And the API answers
    And a symbol discovery succeeds

  Rule: healthy means at least 75, with every phase working

    @basic @needs.ib_history @uses.resilience_report
    Scenario: A healthy gateway scores at least 75
      When a client reads the resilience report
      Then the resilience score is healthy
      And every resilience phase reports working
      And the client-ID phase reports working only if the backend holds the preferred client ID
      And the score is one the contract allows

    @standard @uses.resilience_report
    Scenario: The report is current
      When a client reads the resilience report
      Then the report's timestamp is the current UTC time

  Rule: the score falls when the gateway is in trouble, and comes back

    @basic @needs.fault_proxy @uses.resilience_report
    Scenario: A silent gateway drives the score below 75
      When the gateway goes silent on every open connection
      Then the resilience score falls below healthy within the silent-detection bound

    @standard @uses.resilience_report
    Scenario Outline: The score falls during <trouble> and recovers after it
      When the gateway suffers <trouble>
      Then the resilience score falls below healthy within the trouble-detection bound
      And every resilience report during the trouble came within the API response bound
      When the gateway recovers
      Then the resilience score is healthy again within the recovery bound

      @needs.fault_proxy
      Examples: transport trouble
        | trouble                     |
        | silence after the handshake |
        | an outage                   |

      @needs.gateway_control
      Examples: gateway trouble
        | trouble                          |
        | a restart that refuses for 30 s  |
        | a loss of connectivity to IB     |
