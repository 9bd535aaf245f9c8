@cli
Feature: The CLI tells the truth, quickly, without coroutine warnings
  The CLI once printed "RuntimeWarning: coroutine ... was never awaited" and reported success without
  asking IB. Every command must finish within 30 seconds with no RuntimeWarning, no un-awaited
  coroutine and no traceback (Python warnings enabled), and "ib test" must really ask IB.

  Background:
    Given the backend is serving requests through a healthy gateway

  Rule: every command is clean and quick

    @basic
    Scenario: "ib test" passes against a healthy gateway
      When the operator runs "ib test"
      Then the command succeeds within the CLI bound
      And the command printed no warning, coroutine complaint or traceback

    @standard
    Scenario Outline: "<command>" is clean and quick
      When the operator runs "<command>"
      Then the command succeeds within the CLI bound
      And the command printed no warning, coroutine complaint or traceback

      Examples:
        | command                          |
        | ib test --symbol MSFT --verbose  |
        | ib status                        |
        | ib status --format json          |
        | ib cleanup --force               |
        | data load AAPL --timeframe 1d --mode tail |
        | data show AAPL --timeframe 1d --rows 5    |

    @standard @needs.fault_proxy
    Scenario: "ib status" shows the live score, not a constant
      Given the gateway goes silent on every open connection
      And the resilience score falls below 75 within the silent-detection bound
      When the operator runs "ib status --format json"
      Then the command's output shows the resilience score the API reports

  Rule: "ib test" fails honestly

    @standard @needs.fault_proxy
    Scenario Outline: "ib test" fails when the gateway suffers <trouble>
      Given the gateway suffers <trouble>
      When the operator runs "ib test"
      Then the command fails with a clear message within the CLI bound
      And the command printed no warning, coroutine complaint or traceback

      Examples:
        | trouble                     |
        | silence after the handshake |
        | an outage                   |

    @standard
    Scenario: The API is not running
      When the operator runs "ib status" against an API that is not running
      Then the command fails with a message that it could not connect to the API
      And the command printed no warning, coroutine complaint or traceback

  Rule: commands do not interfere and can be interrupted

    @standard
    Scenario: Concurrent commands do not interfere
      When 3 operators run "ib test" at the same time
      Then every command succeeds within the CLI bound
      And no command printed a warning, coroutine complaint or traceback

    @standard @needs.gateway_control
    Scenario: Ctrl-C during a data load cancels the operation cleanly
      Given the gateway answers historical-data requests 8000 ms late
      When the operator starts "data load MSFT --timeframe 1h --mode tail" and presses Ctrl-C once it is running
      Then the command stops within the CLI bound
      And the command printed no warning, coroutine complaint or traceback
      And the data-load operation ends up cancelled
