@pipeline
Feature: The data pipeline, end to end, survives faults honestly
  Symbol discovery, then a data load from IB, then the cached bars read back: the bars the backend
  stores are exactly the bars IB served. A fault in the middle of a load ends it honestly (failed, or
  completed with the bars it really got), never a hang and never bars it did not receive.

  Background:
    Given the gateway answers
    And the API answers
    And a symbol discovery succeeds

  Rule: what is cached is what IB served

    @basic @needs.ib_history @uses.sync_data_load @uses.cached_data
    Scenario: Discover, load and read back
      When a client discovers the symbol "AAPL"
      And a client loads "AAPL" daily bars from IB
      Then the data load succeeds
      And the load's bars came from IB during the request
      And the cached "AAPL" daily bars are exactly the bars IB serves for the same request

    @standard @needs.ib_history @uses.sync_data_load
    Scenario: The load reports the IB requests it really made
      When a client loads "MSFT" hourly bars from IB
      Then the data load succeeds
      And the load's bars came from IB during the request
      And the load reported as many IB requests as the gateway received

    @standard @uses.async_data_load @uses.cached_data
    Scenario: An asynchronous load reports progress and completes
      When a client starts an asynchronous load of "SPY" hourly bars
      Then the operation completes within 60 seconds
      And the operation reported its progress
      And the cached "SPY" hourly bars hold as many bars as the operation fetched

  Rule: a fault mid-load ends the load honestly

    @standard @needs.gateway_control @uses.async_data_load @uses.cached_data
    Scenario: The gateway goes silent during an asynchronous load
      Given the gateway answers historical-data requests 1500 ms late
      When a client starts an asynchronous load of "IBM" 5-minute bars
      And the gateway goes silent once the operation is running
      Then the operation ends within 90 seconds
      And the operation reports exactly the bars it cached
      And every cached "IBM" 5-minute bar is a bar IB really serves
