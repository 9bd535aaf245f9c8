@phase3 @client_ids
Feature: Client IDs: the preferred one first, the next in order on error 326, freed IDs reused
  IB Gateway refuses a second connection with a client ID already in use (error 326). The backend
  starts with its preferred client ID (1 for KTRDR), moves to the next one in order when IB answers 326,
  and reuses freed IDs first. When every allowed ID is taken it says so quickly.

  Background:
    Given the gateway answers
    And the API answers
    And a symbol discovery succeeds
    And the backend holds no IB connections

  Rule: the preferred client ID comes first

    @basic @needs.ib_history
    Scenario: A fresh pool connects with the preferred client ID
      When a client discovers a symbol
      Then the request succeeds
      And the gateway accepted the backend with the preferred client ID

  Rule: error 326 moves the backend to the next ID in order

    @standard @needs.ib_history
    Scenario Outline: Client IDs already taken by someone else are skipped in order
      Given another application holds <taken> client ID(s) starting at the preferred one
      When a client discovers a symbol
      Then the request succeeds
      And the gateway refused the backend <taken> time(s) with error 326
      And the gateway accepted the backend with the preferred client ID plus <taken>

      Examples:
        | taken |
        | 1     |
        | 2     |

    @standard @needs.ib_history @uses.api_cleanup
    Scenario: The preferred ID is used again once it is free
      Given another application holds 1 client ID(s) starting at the preferred one
      And a client has discovered a symbol
      When the other application lets its client IDs go
      And the backend cleans up its IB connections
      And a client discovers a symbol
      Then the gateway last accepted the backend with the preferred client ID

    @standard @needs.gateway_control @uses.health_check_loop @uses.resilience_report
    Scenario: A freed ID is reused before a new one is taken
      Given the gateway answers contract-detail requests 300 ms late
      And 2 clients have discovered symbols at the same time
      And the gateway has dropped the connection with the preferred client ID
      And the pool has let go of the dropped connection
      When 2 clients discover symbols at the same time
      Then the gateway last accepted the backend with the preferred client ID

  Rule: running out of IDs is a clear, quick error

    @standard @needs.ib_history
    Scenario: Every allowed client ID is taken
      Given another application holds every client ID the backend may use
      When a client discovers a symbol
      Then the request fails with a clear IB error within the API response bound
