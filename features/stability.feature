@stability @leaks
Feature: No leaks over extended operation
  The seed's memory-stability check, made measurable: while the backend serves requests for a while,
  its memory, open file descriptors, threads and sockets stay within bounds, and it holds no more IB
  connections than its pool allows. Samples are attached to the report as a plot.

  Background:
    Given the gateway answers
    And the API answers
    And a symbol discovery succeeds

  @standard @needs.backend_process
  Scenario: Resources stay flat over 150 requests
    Given the backend's resources are being sampled
    When clients make 150 mixed requests
    Then the backend's memory grew by at most 20 MB
    And the backend's open file descriptors grew by at most 10
    And the backend's threads grew by at most 5
    And the backend never held more IB connections than its pool allows

  @exhaustive @needs.backend_process
  Scenario: Resources stay flat over 2000 requests with faults in between
    Given the backend's resources are being sampled
    When clients make 2000 mixed requests while the gateway goes silent every 500 requests
    Then the backend's memory grew by at most 30 MB
    And the backend's open file descriptors grew by at most 10
    And the backend's threads grew by at most 5
    And the backend never held more IB connections than its pool allows
