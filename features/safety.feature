@safety
Feature: The suite never touches a live account
  Resilience scenarios inject faults, squat client IDs and load data. They must only ever run against
  a paper account (IB paper accounts start with "D"); a live account stops the run before any scenario.

  @basic
  Scenario: The gateway under test is logged in to a paper account
    When the suite checks the account the gateway is logged in to
    Then it is a paper account

  @standard
  Scenario: A gateway logged in to a live account is refused
    Given a gateway logged in to the live account "U1234567"
    When the suite checks the account that gateway is logged in to
    Then the suite refuses to run against it
