@phase1 @validation
Feature: Every connection is validated before it is handed out
  A pooled connection may have died while it sat idle. Before the backend hands a connection to a
  caller it must check it on the wire: isConnected() and a reqCurrentTime() round-trip, bounded by
  3 seconds. A connection that fails the check is discarded, never used; and no two callers ever
  share one connection at the same moment.

  Background:
    Given the gateway answers
    And the API answers
    And a symbol discovery succeeds

  Rule: validation is a real round-trip to IB, made before every handoff

    @basic @needs.ib_history
    Scenario: Each request is preceded by a validation round-trip on its connection
      When a client discovers 3 symbols one after another
      Then every request succeeded
      And every connection was validated with a server-time request before it was used

    @standard @needs.ib_history
    Scenario: A reused connection is validated again
      Given a client has discovered a symbol
      When a client discovers 2 more symbols one after another
      Then every connection was validated with a server-time request before it was used
      And no connection that passed its validation was thrown away

    @standard @needs.gateway_control
    Scenario: Validation that gets a slow but timely answer lets the request through
      Given the gateway answers the server-time request 1000 ms late
      When a client discovers a symbol
      Then the request succeeds within the validation bound plus 2 seconds

  Rule: a connection that fails validation is never used

    @standard @needs.gateway_control
    Scenario: A connection whose validation is never answered carries no request
      Given a client has discovered a symbol
      And the gateway stops answering server-time requests
      When a client discovers a symbol
      Then the request fails within the silent-detection bound instead of hanging
      And no request was sent on a connection that failed validation

  Rule: one connection, one caller at a time

    @standard @needs.gateway_control
    Scenario: Concurrent requests never share a connection
      Given the gateway answers contract-detail requests 300 ms late
      When 8 clients discover symbols at the same time
      Then no connection carried two requests at the same moment
      And every request succeeded
