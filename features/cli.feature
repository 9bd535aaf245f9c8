@cli
Feature: The CLI tells the truth, quickly, without coroutine warnings
  The CLI once printed "RuntimeWarning: coroutine ... was never awaited" and reported success without
  asking IB. Every command must finish within 30 seconds with no RuntimeWarning, no un-awaited
  coroutine and no traceback (Python warnings enabled), and must really do what it says: "ib test"
  asks IB, "ib status" shows the live state, "ib cleanup" reports the connections IB saw close.

  Background:
    Given the gateway answers
    And the API answers

  Rule: every command is clean, quick, and does its job

    @basic @needs.ib_history
    Scenario: "ib test" passes against a healthy gateway, and really asks IB
      When the operator runs "ib test"
      Then the command succeeds within the CLI bound
      And the command printed no warning, coroutine complaint or traceback
      And the gateway received a contract-details request from the backend while the command ran

    @standard @needs.ib_history
    Scenario Outline: "<command>" is clean and quick, and does its job
      Given a symbol discovery succeeds
      When the operator runs "<command>"
      Then the command succeeds within the CLI bound
      And the command printed no warning, coroutine complaint or traceback
      And <its job>

      Examples:
        | command                                 | its job                                                                                |
        | ib test --symbol MSFT --verbose         | the gateway received a contract-details request from the backend while the command ran |
        | data load KO --timeframe 1d --mode tail | the gateway answered historical-data requests from the backend while the command ran   |

      @uses.resilience_report
      Examples: what the status command needs
        | command                 | its job                                                         |
        | ib status               | the command's output shows the resilience score the API reports |
        | ib status --format json | the command's output shows the resilience score the API reports |

      @uses.cli_cleanup
      Examples: what the cleanup command needs
        | command                                 | its job                                                                  |
        | ib cleanup --force                      | the command reported as many closed connections as the gateway saw close |

    @standard @uses.cached_data @uses.sync_data_load
    Scenario: "data show" prints the cached bars
      Given a client has loaded "JPM" daily bars from IB
      When the operator runs "data show JPM --timeframe 1d --rows 5"
      Then the command succeeds within the CLI bound
      And the command printed no warning, coroutine complaint or traceback
      And the command printed the last 5 cached "JPM" daily bars

  Rule: "ib status" shows the live state, and "ib cleanup" the real count

    @standard @needs.fault_proxy @uses.resilience_report
    Scenario Outline: "ib status" in <format> shows the live score, not a constant
      Given a symbol discovery succeeds
      When the operator runs "ib status <options>"
      Then the command's output shows the resilience score the API reports
      When the gateway goes silent on every open connection
      Then the resilience score falls below healthy within the silent-detection bound
      When the operator runs "ib status <options>"
      Then the command's output shows the resilience score the API reports
      And the command's output changed with the gateway's state

      Examples:
        | format | options       |
        | table  |               |
        | JSON   | --format json |

    @standard @needs.ib_history @uses.cli_cleanup
    Scenario: "ib cleanup" reports the connections the gateway saw close
      Given 3 clients have discovered symbols at the same time
      When the operator runs "ib cleanup --force"
      Then the command succeeds within the CLI bound
      And the command reported as many closed connections as the gateway saw close

  Rule: "ib test" fails honestly

    @standard @needs.fault_proxy
    Scenario Outline: "ib test" fails when the gateway suffers <trouble>
      Given a symbol discovery succeeds
      And the gateway suffers <trouble>
      When the operator runs "ib test"
      Then the command fails with a clear message within the CLI bound
      And the command printed no warning, coroutine complaint or traceback

      Examples:
        | trouble                     |
        | silence after the handshake |
        | an outage                   |

    @standard @needs.api_outage
    Scenario: The API is not running
      When the operator runs "ib status" against an API that is not running
      Then the command fails with a message that it could not connect to the API
      And the command printed no warning, coroutine complaint or traceback

  Rule: commands do not interfere and can be interrupted

    @standard @needs.ib_history
    Scenario: Concurrent commands do not interfere
      When 3 operators run "ib test" at the same time
      Then every command succeeds within the CLI bound
      And no command printed a warning, coroutine complaint or traceback
      And the gateway received a contract-details request from the backend while each command ran

    @standard @needs.gateway_control @uses.operation_cancel
    Scenario: Ctrl-C during a data load cancels the operation cleanly
      Given the gateway answers historical-data requests 8000 ms late
      When the operator starts "data load MSFT --timeframe 1h --mode tail" and presses Ctrl-C once it is running
      Then the command stops within the CLI bound
      And the command printed no warning, coroutine complaint or traceback
      And the data-load operation ends up cancelled
