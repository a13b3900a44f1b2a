{#- Connected components of an undirected graph, inside the warehouse.

    Algorithm: iterated graph contraction (the "hook to the smallest neighbour, jump to the root,
    contract" scheme of Shiloach-Vishkin style algorithms, written as set operations):

      edges are kept once, as (a, b) with a < b, over integer keys;
      each round
        1. hook:     every node with a smaller neighbour points at its smallest one (a group-by;
                     nodes without a smaller neighbour are roots of their tree);
        2. jump:     pointers are replaced by their pointer's pointer until every node points at
                     a root (O(log depth) cheap joins on the pointer table only);
        3. contract: every edge is rewritten to (root(a), root(b)); edges inside one tree vanish,
                     duplicates collapse.
      The loop stops when no edge is left. The edge set shrinks every round (a person's star of
      identifiers collapses in the first round), so later rounds touch only the few components
      that are still joining, unlike min-label propagation which rescans every edge every round.
      Labels are composed from the per-round pointer tables at the end: each node's label is
      the smallest key of its component.

    Bounded: more than max_iterations contraction rounds raises an error that names the var to
    raise (pointer jumping within a round is bounded by 64 halvings). Logs rounds, seconds, component count and the largest component.

    edges_sql: a query returning integer columns (src, dst); self-loops and duplicates are fine.
    Returns the name of a temporary table (node, label) valid for the rest of the model's session.
    Portable SQL only (temp tables, group by, joins): runs on DuckDB and PostgreSQL, and the same
    statements run on Snowflake and BigQuery (temp tables in a session/script). -#}
{% macro connected_components(edges_sql, max_iterations, prefix='cc') %}
  {%- set labels = prefix ~ '_labels' -%}
  {%- if execute -%}
    {%- set started = modules.datetime.datetime.now() -%}
    {%- set edges = prefix ~ '_e0' -%}
    {%- do lifeline.cc_drop(prefix, 0) -%}
    {%- do run_query('create temporary table ' ~ edges ~ ' as
        select distinct least(src, dst) as a, greatest(src, dst) as b
        from (' ~ edges_sql ~ ') e where src <> dst') -%}
    {%- set state = namespace(rounds=0, remaining=1, jumps=0) -%}
    {%- for i in range(1, max_iterations + 1) if state.remaining > 0 -%}
      {%- set state.rounds = i -%}
      {%- set cur = prefix ~ '_e' ~ (i - 1) -%}
      {%- set ptr = prefix ~ '_p' ~ i -%}
      {#- 1. hook: the smallest neighbour is always an "a" of an edge (a, node) since a < b. -#}
      {%- do run_query('create temporary table ' ~ ptr ~ ' as select b as node, min(a) as parent from ' ~ cur ~ ' group by b') -%}
      {#- 2. jump until every pointer targets a root (a node without a pointer). Each jump halves
             the depth of the pointer forest, so 63 jumps cover any 64-bit key space. A jump also
             flags the rows it moved; a jump that moved nothing proves every pointer is a root. -#}
      {%- set jump = namespace(moved=1, n=0) -%}
      {%- for j in range(64) if jump.moved > 0 -%}
        {%- set jump.n = jump.n + 1 -%}
        {%- do run_query('create temporary table ' ~ ptr ~ '_j as
            select p.node, coalesce(q.parent, p.parent) as parent, q.parent is not null as moved
            from ' ~ ptr ~ ' p left join ' ~ ptr ~ ' q on q.node = p.parent') -%}
        {%- set moved = run_query('select count(*) from ' ~ ptr ~ '_j where moved') -%}
        {%- set jump.moved = moved.columns[0].values()[0] | int -%}
        {%- do run_query('drop table ' ~ ptr) -%}
        {%- do run_query('alter table ' ~ ptr ~ '_j rename to ' ~ ptr) -%}
      {%- endfor -%}
      {%- if jump.moved > 0 -%}
        {{ exceptions.raise_compiler_error("Identity graph: pointer jumping did not finish within 64 steps in round " ~ i ~ ", which cannot happen on a forest: the edge query must return integer (src, dst) keys.") }}
      {%- endif -%}
      {%- set state.jumps = state.jumps + jump.n -%}
      {#- 3. contract: edges between roots only; edges inside a tree disappear. -#}
      {%- set nxt = prefix ~ '_e' ~ i -%}
      {%- do run_query('create temporary table ' ~ nxt ~ ' as
          select distinct least(ra, rb) as a, greatest(ra, rb) as b
          from (
              select coalesce(pa.parent, e.a) as ra, coalesce(pb.parent, e.b) as rb
              from ' ~ cur ~ ' e
              left join ' ~ ptr ~ ' pa on pa.node = e.a
              left join ' ~ ptr ~ ' pb on pb.node = e.b
          ) r
          where ra <> rb') -%}
      {%- do run_query('drop table ' ~ cur) -%}
      {%- set left = run_query('select count(*) from ' ~ nxt) -%}
      {%- set state.remaining = left.columns[0].values()[0] | int -%}
    {%- endfor -%}
    {%- if state.remaining > 0 -%}
      {%- do lifeline.cc_drop(prefix, state.rounds) -%}
      {{ exceptions.raise_compiler_error("Identity graph did not converge within " ~ max_iterations ~ " contraction rounds (still " ~ state.remaining ~ " edges between partial components). Raise the dbt var identity_max_iterations, or look for an identifier that links far too many people (identity_exclusions, var identity_link_limits).") }}
    {%- endif -%}
    {%- do run_query('drop table if exists ' ~ prefix ~ '_e' ~ state.rounds) -%}
    {#- Compose the per-round pointers, last round first: root_i(node) -> final root. -#}
    {%- set final = prefix ~ '_f' -%}
    {%- do run_query('create temporary table ' ~ final ~ ' as select node, parent from ' ~ prefix ~ '_p' ~ state.rounds) -%}
    {%- for i in range(state.rounds - 1, 0, -1) -%}
      {%- do run_query('create temporary table ' ~ final ~ '_n as
          select p.node, coalesce(f.parent, p.parent) as parent
          from ' ~ prefix ~ '_p' ~ i ~ ' p left join ' ~ final ~ ' f on f.node = p.parent
          union all
          select node, parent from ' ~ final) -%}
      {%- do run_query('drop table ' ~ final) -%}
      {%- do run_query('alter table ' ~ final ~ '_n rename to ' ~ final) -%}
    {%- endfor -%}
    {#- Every linked node is either pointed somewhere in some round (in the composed table) or
        the final root of its component (then it is some node's parent there). -#}
    {%- do run_query('create temporary table ' ~ labels ~ ' as
        select node, parent as label from ' ~ final ~ '
        union all
        select distinct parent as node, parent as label from ' ~ final) -%}
    {%- do lifeline.cc_drop(prefix, state.rounds, keep_labels=true) -%}
    {%- set stats = run_query('select coalesce(sum(c), 0), count(*), coalesce(max(c), 0) from (select count(*) as c from ' ~ labels ~ ' group by label) s') -%}
    {%- set seconds = (modules.datetime.datetime.now() - started).total_seconds() -%}
    {{ log("identity graph: " ~ state.rounds ~ " rounds, " ~ state.jumps ~ " pointer jumps, " ~ ("%.3f" | format(seconds)) ~ " s, " ~ stats.columns[0].values()[0] ~ " linked identifiers in " ~ stats.columns[1].values()[0] ~ " components, largest " ~ stats.columns[2].values()[0], info=True) }}
  {%- endif -%}
  {{ return(labels) }}
{% endmacro %}

{#- Drops the scratch tables of connected_components: every name it may create for rounds
    0..rounds (all of them, or all but the labels). One statement each, for warehouses that take
    one statement per call. -#}
{% macro cc_drop(prefix, rounds, keep_labels=false) %}
  {%- set names = [prefix ~ '_f', prefix ~ '_f_n'] -%}
  {%- if not keep_labels -%}{%- do names.append(prefix ~ '_labels') -%}{%- endif -%}
  {%- for i in range(rounds + 1) -%}
    {%- do names.extend([prefix ~ '_e' ~ i, prefix ~ '_p' ~ i, prefix ~ '_p' ~ i ~ '_j']) -%}
  {%- endfor -%}
  {%- for name in names -%}{%- do run_query('drop table if exists ' ~ name) -%}{%- endfor -%}
{% endmacro %}

{#- A stable 60-bit integer key for an identifier, from the md5 of its text: the same on every
    warehouse and every run, so graph state can be kept between incremental runs. A collision
    (odds about 1 in 10^13 per pair) is caught by the unique test on int_identifiers.identifier_key. -#}
{% macro stable_key(expr) -%}{{ return(adapter.dispatch('stable_key', 'lifeline')(expr)) }}{%- endmacro %}
{% macro default__stable_key(expr) -%}('x' || substr(md5({{ expr }}), 1, 15))::bit(60)::bigint{%- endmacro %}
{% macro duckdb__stable_key(expr) -%}cast(('0x' || substr(md5({{ expr }}), 1, 15)) as bigint){%- endmacro %}
{% macro snowflake__stable_key(expr) -%}to_number(substr(md5({{ expr }}), 1, 15), 'XXXXXXXXXXXXXXX'){%- endmacro %}
{% macro bigquery__stable_key(expr) -%}cast(concat('0x', substr(to_hex(md5({{ expr }})), 1, 15)) as int64){%- endmacro %}
