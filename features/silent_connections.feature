@phase1 @silent
Feature: Silent gateway connections are caught, never handed out
  A connection can look alive (the socket is open, isConnected() is true) while IB Gateway answers
  nothing: the bug that started this project. The backend must find out within 5 seconds, must never
  hang a caller, and must not mistake a slow gateway for a dead one. Every request answers within the
  API bound (5 s) whatever the gateway does: a 3 s validation leaves 2 s for one bounded replacement
  attempt, then the request fails with a 503 (docs/contract.md, "Bounds").

  Background:
    Given the gateway answers
    And the API answers
    And a symbol discovery succeeds

  Rule: a silent gateway is detected within the seed's 5 seconds

    @basic @needs.fault_proxy
    Scenario: The gateway stops answering after the handshake
      When the gateway goes silent on every open connection
      And a client discovers a symbol
      Then the request fails within the silent-detection bound instead of hanging

    @basic @needs.fault_proxy
    Scenario: The backend reports IB unhealthy when the gateway is silent
      When the gateway goes silent on every open connection
      Then the backend reports IB unhealthy within the silent-detection bound

    @standard @needs.gateway_control
    Scenario: Only the server-time request goes unanswered
      When the gateway stops answering server-time requests
      Then the backend reports IB unhealthy within the silent-detection bound

    @standard @needs.fault_proxy
    Scenario: The handshake is never answered
      Given the backend holds no IB connections
      When the gateway accepts connections but never answers the handshake
      And a client discovers a symbol
      Then the request fails within the silent-detection bound instead of hanging

    @standard @needs.gateway_control
    Scenario: The gateway answers the handshake but never starts the API session
      Given the backend holds no IB connections
      When the gateway ignores the start of every API session
      And a client discovers a symbol
      Then the request fails within the silent-detection bound instead of hanging

  Rule: the backend's own health report follows the gateway

    @standard
    Scenario: The backend reports IB healthy when the gateway answers
      When a client reads the IB health
      Then the answer says IB is healthy
      And the answer came within the API response bound

  Rule: slow is not dead

    @standard @needs.fault_proxy
    Scenario: A slow but alive gateway is not declared dead
      Given the gateway answers everything 1000 ms late
      When a client discovers a symbol
      Then the request succeeds
      And the backend reports IB healthy

  Rule: service returns by itself once the gateway talks again

    @standard @needs.fault_proxy
    Scenario: Requests succeed again after the silence ends
      Given the gateway goes silent on every open connection
      And a client discovers a symbol
      When the gateway answers again
      Then a client can discover a symbol again within the recovery bound
