@backend_output
Feature: The backend's own output stays clean, and stopping it gives IB its connections back
  The original bug, "coroutine ... was never awaited", shows in no HTTP answer: Python prints it on the
  backend's own stderr. KTRDR's backend printed it at every shutdown and during data loads while every
  answer looked fine. What the backend prints — captured when the suite starts the backend, or read from
  the file named by backend_log — is evidence like any answer: serving healthy traffic and stopping print
  no warning, un-awaited coroutine or traceback. Stopping the backend (SIGTERM, what Docker, systemd and
  CI send) also closes every IB connection it holds, as the gateway sees it, within the shutdown bound.

  Background:
    Given the gateway answers
    And the API answers

  Rule: serving healthy traffic prints no complaint

    @basic @needs.backend_output
    Scenario: Reading the IB status and health and discovering a symbol print no complaint
      When a client reads the IB status
      And a client reads the IB health
      And a client discovers a symbol
      Then the backend printed no warning, coroutine complaint or traceback meanwhile

    @standard @needs.backend_output @uses.sync_data_load
    Scenario: A data load prints no complaint
      Given a symbol discovery succeeds
      When a client loads "IBM" daily bars from IB
      Then the backend printed no warning, coroutine complaint or traceback meanwhile
      And the data load succeeds

    @standard @needs.backend_output
    Scenario: Serving the operator's commands prints no complaint
      Given a symbol discovery succeeds
      When the operator runs "ib test"
      And the operator runs "ib status"
      Then the backend printed no warning, coroutine complaint or traceback meanwhile

  Rule: stopping is clean

    @basic @needs.backend_restart @needs.backend_output
    Scenario: Stopping the backend prints no complaint
      Given a symbol discovery succeeds
      When the backend is told to stop
      Then the backend printed no warning, coroutine complaint or traceback while it stopped

    @standard @needs.backend_restart @needs.ib_history @fixture.backend.defaults
    Scenario: Stopping the backend closes every IB connection it holds within the shutdown bound
      Given the backend holds an IB connection the gateway sees
      When the backend is told to stop
      Then the gateway saw every connection the backend held close within the shutdown bound
      And the backend stopped by itself within the shutdown bound
