{#- Connected components of an undirected graph, inside the warehouse.

    edges_sql: a query returning integer columns (src, dst). Every node that appears in an edge is
    labelled with the smallest node id of its component. Algorithm: min-label propagation with
    pointer jumping (each round takes the smallest label among a node's neighbours, then replaces
    every label by its label's label), which needs O(log diameter) rounds on the chains that make
    plain propagation slow. Stops when a round changes nothing; if that takes more than
    max_iterations rounds it raises an error naming the var to raise.

    Returns the name of a temporary table (node, label) valid for the rest of the model. -#}
{% macro connected_components(edges_sql, max_iterations, prefix='cc') %}
  {%- set edges = prefix ~ '_edges' -%}
  {%- set labels = prefix ~ '_labels' -%}
  {%- set nxt = prefix ~ '_next' -%}
  {%- if execute -%}
    {%- do run_query('drop table if exists ' ~ edges) -%}
    {%- do run_query('drop table if exists ' ~ labels) -%}
    {%- do run_query('drop table if exists ' ~ nxt) -%}
    {%- do run_query('create temporary table ' ~ edges ~ ' as select src, dst from (' ~ edges_sql ~ ') e where src <> dst union select dst as src, src as dst from (' ~ edges_sql ~ ') e2 where src <> dst') -%}
    {%- do run_query('create temporary table ' ~ labels ~ ' as select src as node, min(least(src, dst)) as label from ' ~ edges ~ ' group by src') -%}
    {%- set state = namespace(rounds=0, changed=1) -%}
    {%- for i in range(max_iterations) if state.changed > 0 -%}
      {%- set state.rounds = i + 1 -%}
      {%- do run_query('create temporary table ' ~ nxt ~ ' as
          with neighbour_min as (
              select e.src as node, min(l.label) as label
              from ' ~ edges ~ ' e join ' ~ labels ~ ' l on l.node = e.dst
              group by e.src
          ),
          propagated as (
              select l.node, least(l.label, coalesce(n.label, l.label)) as label
              from ' ~ labels ~ ' l left join neighbour_min n on n.node = l.node
          ),
          jumped as (
              select p.node, least(p.label, q.label) as label
              from propagated p join propagated q on q.node = p.label
          )
          select node, label from jumped') -%}
      {%- set diff = run_query('select count(*) from ' ~ nxt ~ ' n join ' ~ labels ~ ' l on l.node = n.node where n.label <> l.label') -%}
      {%- set state.changed = diff.columns[0].values()[0] | int -%}
      {%- do run_query('drop table ' ~ labels) -%}
      {%- do run_query('alter table ' ~ nxt ~ ' rename to ' ~ labels) -%}
    {%- endfor -%}
    {%- if state.changed > 0 -%}
      {{ exceptions.raise_compiler_error("Identity graph did not converge within " ~ max_iterations ~ " rounds (still " ~ state.changed ~ " label changes). Raise the dbt var identity_max_iterations, or look for an identifier that links far too many people (identity_exclusions).") }}
    {%- endif -%}
    {%- set stats = run_query('select count(*), count(distinct label) from ' ~ labels) -%}
    {%- set biggest = run_query('select coalesce(max(c), 0) from (select count(*) as c from ' ~ labels ~ ' group by label) s') -%}
    {{ log("identity graph: " ~ state.rounds ~ " rounds, " ~ stats.columns[0].values()[0] ~ " linked identifiers in " ~ stats.columns[1].values()[0] ~ " components, largest " ~ biggest.columns[0].values()[0], info=True) }}
  {%- endif -%}
  {{ return(labels) }}
{% endmacro %}
