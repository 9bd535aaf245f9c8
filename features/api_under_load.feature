@api
Feature: The API answers quickly and honestly, under load and in trouble
  Every request answers within the API bound (5 seconds) in every gateway state — healthy, slow, silent,
  down or restarting — with the contract's envelope (docs/contract.md,
  "Bounds"). A request that needs IB while IB is silent or gone fails with a 503 and an IB- error
  code within that bound; a synchronous data load that cannot reach IB fails within it too and blocks
  no one. Bad requests get a clear answer, never a 500. Pacing a backend imposes on itself (a repeated
  lookup of one symbol) must not push a request past the bound either.

  Background:
    Given the gateway answers
    And the API answers

  Rule: normal load is served fast

    @standard
    Scenario: Concurrent health, status, discovery and data requests
      Given a symbol discovery succeeds
      When 40 mixed requests arrive at the same time
      Then the slowest 5 percent of the requests took at most the API response bound
      And the requests met the required success rate

    @standard
    Scenario Outline: <endpoint> answers with the contract's shape
      When a client reads <endpoint>
      Then the answer has the contract's shape for <endpoint>
      And the answer came within the API response bound

      Examples:
        | endpoint              |
        | the service health    |
        | the IB status         |
        | the IB health         |
        | the IB configuration  |
        | the discovered symbols|

      @uses.resilience_report
      Examples: what the resilience report needs
        | endpoint              |
        | the resilience report |

    @standard
    Scenario: The same symbol looked up again and again stays within the bound
      Given a symbol discovery succeeds
      When a client discovers the same symbol 3 times in a row
      Then every answer came within the API response bound
      And every answer was a success or a clear IB error

  Rule: bad input gets a clear answer

    @basic
    Scenario: An unknown symbol is reported as not found
      When a client discovers the symbol "XYZNOTREAL"
      Then the answer says the symbol was not found
      And the answer came within the API response bound

    @standard
    Scenario: A malformed discovery request is rejected without harm
      When a client sends a discovery request without a symbol
      Then the answer is a validation error
      And a client can discover a symbol again within the recovery bound

  Rule: trouble is reported fast, with a meaningful message

    @standard @needs.fault_proxy
    Scenario: The gateway is gone
      Given the backend holds no IB connections
      When the gateway suffers an outage
      And a client discovers a symbol
      Then the answer is a 503 with an IB error code and a message
      And the answer came within the API response bound

    @standard @needs.fault_proxy @uses.sync_data_load
    Scenario: A synchronous data load while the gateway refuses connections fails fast and blocks no one
      Given a symbol discovery succeeds
      And the backend holds no IB connections
      And the gateway suffers an outage
      When a client loads "XOM" daily bars from IB while another client reads the service health
      Then the data load fails with a clear message within the API response bound
      And every service-health answer during the load came within the API response bound
