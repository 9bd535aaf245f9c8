"""The report: reads what a run left behind (Allure results, JUnit, run metadata) and writes the Markdown
summary, the Allure categories and the HTML. It never touches the live world and never imports the tools
(``ibresilience``); it reuses the specification's verdicts and settings."""
