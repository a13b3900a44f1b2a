{#- Incremental identity chain (models/identity/README.md, "Incremental runs"):
    int_identity_records -> int_identifier_occurrences -> int_identifiers -> int_identity_edges.

    int_identity_records stamps `changed_at` (the run's start) on every row it writes and keeps the
    records it deleted in the side table `int_identity_records__removed` (with their identifiers and
    `removed_at`). Each model downstream stores `changed_at` on its own rows; its mark is the newest
    one, and a run re-derives only what the records changed or removed after that mark touch. When
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

{#- The mark of an incremental model downstream of int_identity_records (the newest changed_at it
    stored), or none when this run must rebuild the model in full: not incremental, empty, the
    records rewritten as a whole since the mark, the side table missing, or `extra_reason` (a
    text, e.g. a changed var) set. A full rebuild in an incremental run empties the table first
    (only in a real run: dbt compile/show must not change data) and is logged. -#}
{% macro identity_chain_mark(label, extra_reason=none) -%}
  {%- if not execute or not is_incremental() -%}{{ return(none) }}{%- endif -%}
  {%- set removed = lifeline.identity_removed_relation() -%}
  {%- set marks = run_query('select (select max(changed_at) from ' ~ this ~ '), (select min(changed_at) from ' ~ ref('int_identity_records') ~ ')').rows[0] -%}
  {%- set mark = lifeline.as_naive_datetime(marks[0]) -%}
  {%- set records_since = lifeline.as_naive_datetime(marks[1]) -%}
  {%- set reason = extra_reason -%}
  {%- if reason is none and mark is none -%}{%- set reason = 'no stored rows' -%}{%- endif -%}
  {%- if reason is none and records_since is not none and records_since > mark -%}
    {%- set reason = 'int_identity_records was rebuilt in full since the last run' -%}
  {%- endif -%}
  {%- if reason is none and adapter.get_relation(removed.database, removed.schema, removed.identifier) is none -%}
    {%- set reason = 'the side table ' ~ removed ~ ' is missing' -%}
  {%- endif -%}
  {%- if reason is not none -%}
    {{ log(label ~ " (incremental): " ~ reason ~ ": rebuilding every row", info=True) }}
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
