@api
Feature: The API answers quickly and honestly, under load and in trouble
  Every endpoint answers within 5 seconds under normal load, with the contract's envelope. Bad requests
  get a clear answer, never a 500; with the gateway gone the IB endpoints say so quickly with a 503.

  Background:
    Given the backend is serving requests through a healthy gateway

  Rule: normal load is served fast

    @standard
    Scenario: Concurrent health, status, discovery and data requests
      When 40 mixed requests arrive at the same time
      Then the slowest 5 percent of the requests took at most 5 seconds
      And at least 95 percent of the requests succeeded

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
        | the resilience report |
        | the IB configuration  |
        | the discovered symbols|

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
      And a client discovers the symbol "AAPL"
      Then the answer is a 503 with an IB error code and a message
      And the answer came within the silent-detection bound
