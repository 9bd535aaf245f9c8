"""Output of common CLI table libraries, verbatim, for the readers' tests (tabulate 0.10.0: not a dependency).

Each table shows the same three facts (connected True, resilience score 75, pool size 3) or, in the column
layouts, one row under the headers Connected, Host, Port, Resilience score.
"""

TABULATE_LABELS = {
    "grid": """\
+------------------+------+
| Connected        | True |
+------------------+------+
| Resilience score |   75 |
+------------------+------+
| Pool size        |    3 |
+------------------+------+
""",
    "psql": """\
+------------------+------+
| Connected        | True |
| Resilience score |   75 |
| Pool size        |    3 |
+------------------+------+
""",
    "github": """\
|------------------|------|
| Connected        | True |
| Resilience score |   75 |
| Pool size        |    3 |
""",
    "simple": """\
----------------  ----
Connected         True
Resilience score    75
Pool size            3
----------------  ----
""",
    "pipe": """\
|:-----------------|-----:|
| Connected        | True |
| Resilience score |   75 |
| Pool size        |    3 |
""",
    "rst": """\
================  ====
Connected         True
Resilience score    75
Pool size            3
================  ====
""",
    "fancy_grid": """\
╒══════════════════╤══════╕
│ Connected        │ True │
├──────────────────┼──────┤
│ Resilience score │   75 │
├──────────────────┼──────┤
│ Pool size        │    3 │
╘══════════════════╧══════╛
""",
    "rounded_outline": """\
╭──────────────────┬──────╮
│ Connected        │ True │
│ Resilience score │   75 │
│ Pool size        │    3 │
╰──────────────────┴──────╯
""",
    "heavy_grid": """\
┏━━━━━━━━━━━━━━━━━━┳━━━━━━┓
┃ Connected        ┃ True ┃
┣━━━━━━━━━━━━━━━━━━╋━━━━━━┫
┃ Resilience score ┃   75 ┃
┣━━━━━━━━━━━━━━━━━━╋━━━━━━┫
┃ Pool size        ┃    3 ┃
┗━━━━━━━━━━━━━━━━━━┻━━━━━━┛
""",
    "presto": """\
 Connected        | True
 Resilience score |   75
 Pool size        |    3
""",
    "orgtbl": """\
| Connected        | True |
| Resilience score |   75 |
| Pool size        |    3 |
""",
    "outline": """\
+------------------+------+
| Connected        | True |
| Resilience score |   75 |
| Pool size        |    3 |
+------------------+------+
""",
    "simple_grid": """\
┌──────────────────┬──────┐
│ Connected        │ True │
├──────────────────┼──────┤
│ Resilience score │   75 │
├──────────────────┼──────┤
│ Pool size        │    3 │
└──────────────────┴──────┘
""",
    "double_grid": """\
╔══════════════════╦══════╗
║ Connected        ║ True ║
╠══════════════════╬══════╣
║ Resilience score ║   75 ║
╠══════════════════╬══════╣
║ Pool size        ║    3 ║
╚══════════════════╩══════╝
""",
    "mixed_grid": """\
┍━━━━━━━━━━━━━━━━━━┯━━━━━━┑
│ Connected        │ True │
├──────────────────┼──────┤
│ Resilience score │   75 │
├──────────────────┼──────┤
│ Pool size        │    3 │
┕━━━━━━━━━━━━━━━━━━┷━━━━━━┙
""",
    "plain": """\
Connected         True
Resilience score    75
Pool size            3
""",
}
TABULATE_LABELS_WITH_HEADER = {
    "grid": """\
+------------------+---------+
| Field            |   Value |
+==================+=========+
| Connected        |    True |
+------------------+---------+
| Resilience score |      75 |
+------------------+---------+
| Pool size        |       3 |
+------------------+---------+
""",
    "psql": """\
+------------------+---------+
| Field            |   Value |
|------------------+---------|
| Connected        |    True |
| Resilience score |      75 |
| Pool size        |       3 |
+------------------+---------+
""",
    "github": """\
| Field            |   Value |
|------------------|---------|
| Connected        |    True |
| Resilience score |      75 |
| Pool size        |       3 |
""",
    "simple": """\
Field               Value
----------------  -------
Connected            True
Resilience score       75
Pool size               3
""",
    "pipe": """\
| Field            |   Value |
|:-----------------|--------:|
| Connected        |    True |
| Resilience score |      75 |
| Pool size        |       3 |
""",
    "rst": """\
================  =======
Field               Value
================  =======
Connected            True
Resilience score       75
Pool size               3
================  =======
""",
    "fancy_grid": """\
╒══════════════════╤═════════╕
│ Field            │   Value │
╞══════════════════╪═════════╡
│ Connected        │    True │
├──────────────────┼─────────┤
│ Resilience score │      75 │
├──────────────────┼─────────┤
│ Pool size        │       3 │
╘══════════════════╧═════════╛
""",
    "rounded_outline": """\
╭──────────────────┬─────────╮
│ Field            │   Value │
├──────────────────┼─────────┤
│ Connected        │    True │
│ Resilience score │      75 │
│ Pool size        │       3 │
╰──────────────────┴─────────╯
""",
    "heavy_grid": """\
┏━━━━━━━━━━━━━━━━━━┳━━━━━━━━━┓
┃ Field            ┃   Value ┃
┣━━━━━━━━━━━━━━━━━━╋━━━━━━━━━┫
┃ Connected        ┃    True ┃
┣━━━━━━━━━━━━━━━━━━╋━━━━━━━━━┫
┃ Resilience score ┃      75 ┃
┣━━━━━━━━━━━━━━━━━━╋━━━━━━━━━┫
┃ Pool size        ┃       3 ┃
┗━━━━━━━━━━━━━━━━━━┻━━━━━━━━━┛
""",
    "presto": """\
 Field            |   Value
------------------+---------
 Connected        |    True
 Resilience score |      75
 Pool size        |       3
""",
    "orgtbl": """\
| Field            |   Value |
|------------------+---------|
| Connected        |    True |
| Resilience score |      75 |
| Pool size        |       3 |
""",
    "outline": """\
+------------------+---------+
| Field            |   Value |
+==================+=========+
| Connected        |    True |
| Resilience score |      75 |
| Pool size        |       3 |
+------------------+---------+
""",
    "simple_grid": """\
┌──────────────────┬─────────┐
│ Field            │   Value │
├──────────────────┼─────────┤
│ Connected        │    True │
├──────────────────┼─────────┤
│ Resilience score │      75 │
├──────────────────┼─────────┤
│ Pool size        │       3 │
└──────────────────┴─────────┘
""",
    "double_grid": """\
╔══════════════════╦═════════╗
║ Field            ║   Value ║
╠══════════════════╬═════════╣
║ Connected        ║    True ║
╠══════════════════╬═════════╣
║ Resilience score ║      75 ║
╠══════════════════╬═════════╣
║ Pool size        ║       3 ║
╚══════════════════╩═════════╝
""",
    "mixed_grid": """\
┍━━━━━━━━━━━━━━━━━━┯━━━━━━━━━┑
│ Field            │   Value │
┝━━━━━━━━━━━━━━━━━━┿━━━━━━━━━┥
│ Connected        │    True │
├──────────────────┼─────────┤
│ Resilience score │      75 │
├──────────────────┼─────────┤
│ Pool size        │       3 │
┕━━━━━━━━━━━━━━━━━━┷━━━━━━━━━┙
""",
    "plain": """\
Field               Value
Connected            True
Resilience score       75
Pool size               3
""",
}
TABULATE_COLUMNS = {
    "grid": """\
+-------------+-----------+--------+--------------------+
| Connected   | Host      |   Port |   Resilience score |
+=============+===========+========+====================+
| True        | 127.0.0.1 |   4002 |                 75 |
+-------------+-----------+--------+--------------------+
""",
    "psql": """\
+-------------+-----------+--------+--------------------+
| Connected   | Host      |   Port |   Resilience score |
|-------------+-----------+--------+--------------------|
| True        | 127.0.0.1 |   4002 |                 75 |
+-------------+-----------+--------+--------------------+
""",
    "github": """\
| Connected   | Host      |   Port |   Resilience score |
|-------------|-----------|--------|--------------------|
| True        | 127.0.0.1 |   4002 |                 75 |
""",
    "simple": """\
Connected    Host         Port    Resilience score
-----------  ---------  ------  ------------------
True         127.0.0.1    4002                  75
""",
    "pipe": """\
| Connected   | Host      |   Port |   Resilience score |
|:------------|:----------|-------:|-------------------:|
| True        | 127.0.0.1 |   4002 |                 75 |
""",
    "rst": """\
===========  =========  ======  ==================
Connected    Host         Port    Resilience score
===========  =========  ======  ==================
True         127.0.0.1    4002                  75
===========  =========  ======  ==================
""",
    "fancy_grid": """\
╒═════════════╤═══════════╤════════╤════════════════════╕
│ Connected   │ Host      │   Port │   Resilience score │
╞═════════════╪═══════════╪════════╪════════════════════╡
│ True        │ 127.0.0.1 │   4002 │                 75 │
╘═════════════╧═══════════╧════════╧════════════════════╛
""",
    "rounded_outline": """\
╭─────────────┬───────────┬────────┬────────────────────╮
│ Connected   │ Host      │   Port │   Resilience score │
├─────────────┼───────────┼────────┼────────────────────┤
│ True        │ 127.0.0.1 │   4002 │                 75 │
╰─────────────┴───────────┴────────┴────────────────────╯
""",
    "heavy_grid": """\
┏━━━━━━━━━━━━━┳━━━━━━━━━━━┳━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━┓
┃ Connected   ┃ Host      ┃   Port ┃   Resilience score ┃
┣━━━━━━━━━━━━━╋━━━━━━━━━━━╋━━━━━━━━╋━━━━━━━━━━━━━━━━━━━━┫
┃ True        ┃ 127.0.0.1 ┃   4002 ┃                 75 ┃
┗━━━━━━━━━━━━━┻━━━━━━━━━━━┻━━━━━━━━┻━━━━━━━━━━━━━━━━━━━━┛
""",
    "presto": """\
 Connected   | Host      |   Port |   Resilience score
-------------+-----------+--------+--------------------
 True        | 127.0.0.1 |   4002 |                 75
""",
    "orgtbl": """\
| Connected   | Host      |   Port |   Resilience score |
|-------------+-----------+--------+--------------------|
| True        | 127.0.0.1 |   4002 |                 75 |
""",
    "outline": """\
+-------------+-----------+--------+--------------------+
| Connected   | Host      |   Port |   Resilience score |
+=============+===========+========+====================+
| True        | 127.0.0.1 |   4002 |                 75 |
+-------------+-----------+--------+--------------------+
""",
    "simple_grid": """\
┌─────────────┬───────────┬────────┬────────────────────┐
│ Connected   │ Host      │   Port │   Resilience score │
├─────────────┼───────────┼────────┼────────────────────┤
│ True        │ 127.0.0.1 │   4002 │                 75 │
└─────────────┴───────────┴────────┴────────────────────┘
""",
    "double_grid": """\
╔═════════════╦═══════════╦════════╦════════════════════╗
║ Connected   ║ Host      ║   Port ║   Resilience score ║
╠═════════════╬═══════════╬════════╬════════════════════╣
║ True        ║ 127.0.0.1 ║   4002 ║                 75 ║
╚═════════════╩═══════════╩════════╩════════════════════╝
""",
    "mixed_grid": """\
┍━━━━━━━━━━━━━┯━━━━━━━━━━━┯━━━━━━━━┯━━━━━━━━━━━━━━━━━━━━┑
│ Connected   │ Host      │   Port │   Resilience score │
┝━━━━━━━━━━━━━┿━━━━━━━━━━━┿━━━━━━━━┿━━━━━━━━━━━━━━━━━━━━┥
│ True        │ 127.0.0.1 │   4002 │                 75 │
┕━━━━━━━━━━━━━┷━━━━━━━━━━━┷━━━━━━━━┷━━━━━━━━━━━━━━━━━━━━┙
""",
    "plain": """\
Connected    Host         Port    Resilience score
True         127.0.0.1    4002                  75
""",
}
