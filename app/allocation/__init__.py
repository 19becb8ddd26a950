"""Allocation: rules (app/allocation/rules.py) compiled to one DuckDB statement (compile.py; which rule claims each
line: matcher.py; the SQL building blocks both use: sql.py) that splits every cost line into parts owned by a team,
service, cost center, environment and custom dimensions; versions, diff, explain and coverage (engine.py). See the
README's "Allocation rules" section."""
