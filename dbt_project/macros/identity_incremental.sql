{#- Incremental identity chain (models/identity/README.md, "Incremental runs"):
    int_identity_records -> int_identifier_occurrences -> int_identifiers -> int_identity_edges.

    int_identity_records stamps `changed_at` (the run's start) on every row it writes and keeps the
    records it deleted in the side table `int_identity_records__removed` (with their identifiers and
    `removed_at`). Each model downstream logs its successful runs in `int_identity_records__runs`;
    its mark is its last run's start, and a run re-derives only what the records changed or
    removed after that mark touch. When
    the records were rewritten as a whole since the mark (a --full-refresh or a fallback of
    int_identity_records: its oldest changed_at is newer than the mark), or the side table is
    missing, the model rebuilds itself in full and says so in the log. -#}

{#- The side table of the records int_identity_records deleted (written by its post-hook). -#}
{% macro identity_removed_relation() -%}
  {%- set records = ref('int_identity_records') -%}
  {{ return(api.Relation.create(database=records.database, schema=records.schema, identifier=records.identifier ~ '__removed')) }}
{%- endmacro %}

{#- Post-hook of int_identity_records: the tombstones it wrote (source_rows = 0, a record no row
    supports any more) move to the side table; entries older than every stored record are pruned
    (a model whose mark is older than those rebuilds in full anyway). -#}
{% macro identity_records_post_hook() -%}
  {%- if not execute -%}{{ return('') }}{%- endif -%}
  {%- set removed = api.Relation.create(database=this.database, schema=this.schema, identifier=this.identifier ~ '__removed') -%}
  create table if not exists {{ removed }} (
      record_id {{ dbt.type_string() }}, anonymous_id {{ dbt.type_string() }}, user_id {{ dbt.type_string() }},
      email {{ dbt.type_string() }}, phone {{ dbt.type_string() }}, removed_at {{ dbt.type_timestamp() }});
  insert into {{ removed }} (record_id, anonymous_id, user_id, email, phone, removed_at)
      select record_id, anonymous_id, user_id, email, phone, changed_at from {{ this }} where source_rows = 0;
  delete from {{ this }} where source_rows = 0;
  delete from {{ removed }} where removed_at < (select min(changed_at) from {{ this }})
{%- endmacro %}

{#- One row: how many rows of `relation` carry at least one of `columns` (not all null), and how
    many of those have `stamp_column` after `since` (int_identity_records' check that no staged
    event it read was rewritten or deleted). -#}
{% macro count_identified_rows(relation, columns, stamp_column, since) -%}
  {{ return(adapter.dispatch('count_identified_rows', 'lifeline')(relation, columns, stamp_column, since)) }}
{%- endmacro %}

{% macro default__count_identified_rows(relation, columns, stamp_column, since) -%}
select count(*), count(case when {{ stamp_column }} > {{ since }} then 1 end)
from {{ relation }}
where coalesce({{ columns | join(', ') }}) is not null
{%- endmacro %}

{#- DuckDB: every row minus the rows without any of the columns. count(*) and the stamp (one value
    per load, stored as a constant) read no string, and "is null" filters pushed into the scan read
    only the validity masks; coalesce(...) is not null reads every string of the four columns (1M
    people, 22.7M stg_events rows: ~1.0 s -> ~0.01 s of CPU). -#}
{% macro duckdb__count_identified_rows(relation, columns, stamp_column, since) -%}
select all_rows.row_count - unidentified.row_count, all_rows.since_count - unidentified.since_count
from (
    select count(*) as row_count, count(case when {{ stamp_column }} > {{ since }} then 1 end) as since_count
    from {{ relation }}
) as all_rows
cross join (
    select count(*) as row_count, count(case when {{ stamp_column }} > {{ since }} then 1 end) as since_count
    from {{ relation }}
    where {% for column in columns %}{{ column }} is null{% if not loop.last %} and {% endif %}{% endfor %}
) as unidentified
{%- endmacro %}

{#- The log of the runs of the models downstream (model, ran_at: the start of its last successful
    run), kept next to int_identity_records. -#}
{% macro identity_runs_relation() -%}
  {%- set records = ref('int_identity_records') -%}
  {{ return(api.Relation.create(database=records.database, schema=records.schema, identifier=records.identifier ~ '__runs')) }}
{%- endmacro %}

{#- Post-hook of the models downstream: deletes the tombstones (`tombstone_condition`) and
    records the run in the log. -#}
{% macro identity_chain_post_hook(tombstone_condition) -%}
  {%- if not execute -%}{{ return('') }}{%- endif -%}
  {%- set runs = lifeline.identity_runs_relation() -%}
  delete from {{ this }} where {{ tombstone_condition }};
  create table if not exists {{ runs }} (model {{ dbt.type_string() }}, ran_at {{ dbt.type_timestamp() }});
  delete from {{ runs }} where model = '{{ this.identifier }}';
  insert into {{ runs }} (model, ran_at) values ('{{ this.identifier }}', {{ lifeline.run_stamp() }})
{%- endmacro %}

{#- The mark of an incremental model downstream of int_identity_records (the start of its last
    successful run, from the log), or none when this run must rebuild the model in full: not
    incremental, no run logged, the records rewritten as a whole since the mark (their oldest
    changed_at is newer), a side table missing, or `extra_reason` (a text, e.g. a changed var)
    set. A full rebuild in an incremental run empties the table first (only in a real run: dbt
    compile/show must not change data) and is logged.
    `parents`: the chain models this one reads besides the records; each must have run after the
    records last changed, else the run fails with an error naming what to build (reading a
    parent that has not caught up would record a mark past changes it never saw). -#}
{% macro identity_chain_mark(label, parents=[], extra_reason=none) -%}
  {%- if not execute or not is_incremental() -%}{{ return(none) }}{%- endif -%}
  {%- set removed = lifeline.identity_removed_relation() -%}
  {%- set runs = lifeline.identity_runs_relation() -%}
  {%- set state = namespace(reason=extra_reason if extra_reason is not none else lifeline.missing_side_table([removed, runs])) -%}
  {%- set mark = none -%}
  {%- if state.reason is none -%}
    {%- set ran = run_query('select model, ran_at from ' ~ runs) -%}
    {%- set last_run = {} -%}
    {%- for row in ran.rows -%}{%- do last_run.update({row[0]: lifeline.as_naive_datetime(row[1])}) -%}{%- endfor -%}
    {%- set mark = last_run.get(this.identifier) -%}
    {%- set records = run_query('select (select min(changed_at) from ' ~ ref('int_identity_records') ~ '),
        (select max(changed_at) from ' ~ ref('int_identity_records') ~ '), (select max(removed_at) from ' ~ removed ~ ')').rows[0] -%}
    {%- set records_since = lifeline.as_naive_datetime(records[0]) -%}
    {%- set changed = [lifeline.as_naive_datetime(records[1]), lifeline.as_naive_datetime(records[2])] | reject('none') | list -%}
    {%- if mark is none -%}
      {%- set state.reason = 'no run logged' -%}
    {%- elif records_since is not none and records_since > mark -%}
      {%- set state.reason = 'int_identity_records was rebuilt in full since the last run' -%}
    {%- endif -%}
    {%- for parent in parents if state.reason is none and changed -%}
      {%- if last_run.get(parent) is none or last_run[parent] < changed | max -%}
        {{ exceptions.raise_compiler_error(label ~ ": " ~ parent ~ " has not run since int_identity_records last changed, so it does not reflect those changes yet. Build the chain together: dbt build --select int_identity_records+ (lifeline build does).") }}
      {%- endif -%}
    {%- endfor -%}
  {%- endif -%}
  {%- if state.reason is not none -%}
    {{ log(label ~ " (incremental): " ~ state.reason ~ ": rebuilding every row", info=True) }}
    {%- if flags.WHICH in ('run', 'build') -%}{%- do run_query('delete from ' ~ this) -%}{%- endif -%}
    {{ return(none) }}
  {%- endif -%}
  {{ log(label ~ " (incremental): re-deriving what the records changed or removed after " ~ mark.strftime("%Y-%m-%d %H:%M:%S.%f") ~ " touch", info=True) }}
  {{ return(mark) }}
{%- endmacro %}

{#- The identifiers of records (columns user_id, email, phone, anonymous_id) as
    (record_id, identifier_type, identifier_value) rows. -#}
{% macro unpivot_identifiers(records, extra_columns='') -%}
    select record_id, 'user_id' as identifier_type, user_id as identifier_value{{ extra_columns }} from {{ records }} where user_id is not null
    union all
    select record_id, 'email', email{{ extra_columns }} from {{ records }} where email is not null
    union all
    select record_id, 'phone', phone{{ extra_columns }} from {{ records }} where phone is not null
    union all
    select record_id, 'anonymous_id', anonymous_id{{ extra_columns }} from {{ records }} where anonymous_id is not null
{%- endmacro %}

{#- SQL condition: a and b are equal or both null. -#}
{% macro same_value(a, b) -%}({{ a }} = {{ b }} or ({{ a }} is null and {{ b }} is null)){%- endmacro %}

{#- Fails an incremental run of a model built by a release without `columns` (they were tables
    before): the stored rows lack the marks, so one full refresh is needed. -#}
{% macro identity_require_columns(columns) -%}
  {%- if execute and is_incremental() -%}
    {%- set stored = adapter.get_columns_in_relation(this) | map(attribute='name') | map('lower') | list -%}
    {%- set missing = columns | reject('in', stored) | list -%}
    {%- if missing -%}
      {{ exceptions.raise_compiler_error(this ~ " was built by an earlier release without the column(s) " ~ (missing | join(', ')) ~ " this incremental model needs: run `lifeline build --full-refresh` once (or dbt build --full-refresh --select int_identity_records+).") }}
    {%- endif -%}
  {%- endif -%}
{%- endmacro %}
