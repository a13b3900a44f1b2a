{#- Incremental identity_map and the models that follow its changes (models/identity/README.md,
    "identity_map and int_record_profiles").

    int_identity_components stamps `changed_at` (the run's start) on the rows of every component it
    recomputes, and keeps the identifiers that left the graph (lost every edge) in the side table
    int_identity_components__vanished (identifier_key, vanished_at). identity_map re-derives only
    the components holding an identifier stamped since its last run (int_identifiers.changed_at,
    int_identity_components.changed_at, __vanished) and deletes the identifiers of the records
    removed since (int_identity_records__removed). Each run it writes the identifiers whose
    profile_id changed, appeared or vanished to identity_map__changes and its run to
    identity_map__state, so that int_record_profiles resolves only the records holding one of
    them instead of comparing all of identity_map with a copy. -#}

{% macro identity_side_relation(base, suffix) -%}
  {{ return(api.Relation.create(database=base.database, schema=base.schema, identifier=base.identifier ~ suffix)) }}
{%- endmacro %}

{#- 'the side table <relation> is missing' for the first of `relations` that does not exist, else
    none: the reason an incremental identity model falls back to a full pass. -#}
{% macro missing_side_table(relations) -%}
  {%- for side in relations -%}
    {%- if adapter.get_relation(side.database, side.schema, side.identifier) is none -%}
      {{ return('the side table ' ~ side ~ ' is missing') }}
    {%- endif -%}
  {%- endfor -%}
  {{ return(none) }}
{%- endmacro %}

{#- Post-hook of int_identity_components: its tombstones (component_key null: identifiers that lost
    every edge) go to the side table __vanished, then are deleted. Entries older than every stored
    row are pruned (a reader whose mark is older rebuilds in full anyway). -#}
{% macro components_post_hook() -%}
  {%- if not execute -%}{{ return('') }}{%- endif -%}
  {%- set vanished = lifeline.identity_side_relation(this, '__vanished') -%}
  create table if not exists {{ vanished }} (identifier_key {{ dbt.type_bigint() }}, vanished_at {{ dbt.type_timestamp() }});
  insert into {{ vanished }} (identifier_key, vanished_at)
      select identifier_key, changed_at from {{ this }} where component_key is null;
  delete from {{ this }} where component_key is null;
  delete from {{ vanished }} where vanished_at < (select min(changed_at) from {{ this }})
{%- endmacro %}

{#- md5 of the profile_id salt, kept in identity_map__state: a changed salt renumbers everyone. -#}
{% macro profile_salt_digest() -%}
  {{ return(local_md5(var('profile_id_salt') | string)) }}
{%- endmacro %}

{#- identity_map's mark (the start of its last run, from int_identity_records__runs) when this run
    may re-derive only what changed since, else none (every row is rebuilt, logged; see
    identity_chain_mark for the common reasons, and the error when int_identifiers lags behind the
    records). Extra reasons: the salt changed, int_identifiers or int_identity_components were
    rebuilt in full since the mark (their oldest changed_at is newer) or are empty, a side table is
    missing. -#}
{% macro identity_map_mark(identifiers, components) -%}
  {%- if not execute or not is_incremental() -%}{{ return(none) }}{%- endif -%}
  {%- set state = lifeline.identity_side_relation(this, '__state') -%}
  {%- set vanished = lifeline.identity_side_relation(components, '__vanished') -%}
  {%- set reason = namespace(text=lifeline.missing_side_table([state, vanished])) -%}
  {%- if reason.text is none -%}
    {%- set found = run_query('select (select max(salt_md5) from ' ~ state ~ '), (select max(ran_at) from ' ~ state ~ '),
        (select min(changed_at) from ' ~ identifiers ~ '), (select min(changed_at) from ' ~ components ~ ')').rows[0] -%}
    {%- set ran_at = lifeline.as_naive_datetime(found[1]) -%}
    {%- set identifiers_since = lifeline.as_naive_datetime(found[2]) -%}
    {%- set components_since = lifeline.as_naive_datetime(found[3]) -%}
    {%- if found[0] != lifeline.profile_salt_digest() -%}
      {%- set reason.text = 'the var profile_id_salt changed' -%}
    {%- elif ran_at is none or identifiers_since is none or components_since is none -%}
      {%- set reason.text = 'no run recorded, or int_identifiers or int_identity_components is empty' -%}
    {%- elif identifiers_since > ran_at or components_since > ran_at -%}
      {%- set reason.text = 'int_identifiers or int_identity_components was rebuilt in full since the last run' -%}
    {%- endif -%}
  {%- endif -%}
  {{ return(lifeline.identity_chain_mark('identity_map', ['int_identifiers'], reason.text)) }}
{%- endmacro %}

{#- The relation of identity_map's rows a run writes (recomputed rows plus tombstones, profile_id
    null, for identifiers that left it), built by build_identity_map_batch. -#}
{% macro identity_map_batch_table() -%}{{ return('identity_map__batch') }}{%- endmacro %}
{% macro identity_map_changed_table() -%}{{ return('identity_map__changed') }}{%- endmacro %}

{#- The identity_map rows of the identifiers in `assigned_sql` (a query with identifier_type,
    identifier_value, first_seen_at, last_seen_at, component_key, type_rank), every component of
    which is there whole: the anchor of each component is its earliest-seen identifier (ties:
    type_rank, then value). The earliest first_seen_at per component first (a grouping), then a
    ranking only among the identifiers seen at that time, and one md5 per component. Each row
    carries changed_at, the start of the run that writes it. -#}
{% macro identity_map_rows_sql(assigned_sql) -%}
with assigned as (
    {{ assigned_sql }}
),

earliest as (
    select component_key, min(first_seen_at) as first_seen_at
    from assigned
    group by component_key
),

candidates as (
    select assigned.component_key, assigned.identifier_type, assigned.identifier_value, assigned.type_rank
    from assigned
    join earliest on earliest.component_key = assigned.component_key
    where assigned.first_seen_at = earliest.first_seen_at or earliest.first_seen_at is null
),

anchors as (
    select
        component_key,
        'p_' || substr(md5('{{ var("profile_id_salt") }}' || ':' || identifier_type || ':' || identifier_value), 1, 20) as profile_id
    from (
        select
            candidates.*,
            row_number() over (
                partition by component_key
                order by type_rank, identifier_value
            ) as anchor_rank
        from candidates
    ) ranked
    where anchor_rank = 1
)

select
    assigned.identifier_type,
    assigned.identifier_value,
    anchors.profile_id,
    assigned.first_seen_at,
    assigned.last_seen_at,
    {{ lifeline.run_stamp() }} as changed_at
from assigned
join anchors on anchors.component_key = assigned.component_key
{%- endmacro %}

{#- Columns of identity_map's assigned rows from int_identifiers (alias identifiers) and a
    component key expression. -#}
{% macro identity_map_assigned_columns(component_key) -%}
        identifiers.identifier_type,
        identifiers.identifier_value,
        identifiers.first_seen_at,
        identifiers.last_seen_at,
        {{ component_key }} as component_key,
        case identifiers.identifier_type
            when 'user_id' then 1 when 'email' then 2 when 'phone' then 3 else 4
        end as type_rank
{%- endmacro %}

{#- An incremental run of identity_map: builds the temporary tables identity_map__batch (the rows
    to write: every identifier of the components holding an identifier stamped after `mark` that
    may move its component's anchor or membership, the identifiers only seen again (new seen
    times, stored profile_id), and tombstones) and identity_map__changed (the identifiers whose
    profile_id changed, appeared or vanished, compared with the stored rows), and logs their sizes. -#}
{% macro build_identity_map_batch(mark, identifiers, components) -%}
  {%- set since = lifeline.stamp_literal(mark) -%}
  {%- set batch = lifeline.identity_map_batch_table() -%}
  {%- set changed = lifeline.identity_map_changed_table() -%}
  {%- set vanished = lifeline.identity_side_relation(components, '__vanished') -%}
  {%- for table in (batch, changed, 'identity_map__rewritten', 'identity_map__touched', 'identity_map__affected') -%}
    {%- do run_query('drop table if exists ' ~ table) -%}
  {%- endfor -%}
  {#- The identifiers int_identifiers rewrote since the mark, with their stored row. One that is new
      here, excluded now or has another first_seen_at may move its component's anchor; one that
      only has other seen times (seen again) keeps its stored profile_id unless its component is
      re-derived anyway. -#}
  {%- do run_query('create temporary table identity_map__rewritten as
        select identifiers.identifier_key, identifiers.identifier_type, identifiers.identifier_value,
               identifiers.first_seen_at, identifiers.last_seen_at, stored.profile_id as stored_profile_id,
               (stored.profile_id is null or identifiers.is_excluded
                or stored.first_seen_at is distinct from identifiers.first_seen_at) as moves_anchor
        from ' ~ identifiers ~ ' as identifiers
        left join ' ~ this ~ ' as stored
            on stored.identifier_type = identifiers.identifier_type and stored.identifier_value = identifiers.identifier_value
        where identifiers.changed_at > ' ~ since) -%}
  {#- Identifiers whose component's anchor or membership may have changed since the mark. -#}
  {%- do run_query('create temporary table identity_map__touched as
        select identifier_key from identity_map__rewritten where moves_anchor
        union
        select identifier_key from ' ~ components ~ ' where changed_at > ' ~ since ~ '
        union
        select identifier_key from ' ~ vanished ~ ' where vanished_at > ' ~ since) -%}
  {#- Their components now (an identifier in no component is its own). -#}
  {%- do run_query('create temporary table identity_map__affected as
        select distinct coalesce(components.component_key, touched.identifier_key) as component_key
        from identity_map__touched as touched
        left join ' ~ components ~ ' as components on components.identifier_key = touched.identifier_key') -%}
  {%- set assigned -%}
    select {{ lifeline.identity_map_assigned_columns('members.component_key') }}
    from (
        select components.identifier_key, components.component_key
        from {{ components }} as components
        where components.component_key in (select component_key from identity_map__affected)
        union all
        select touched.identifier_key, touched.identifier_key
        from identity_map__touched as touched
        where touched.identifier_key not in (select identifier_key from {{ components }})
    ) as members
    join {{ identifiers }} as identifiers on identifiers.identifier_key = members.identifier_key
    where not identifiers.is_excluded
  {%- endset -%}
  {%- do run_query('create temporary table ' ~ batch ~ ' as
        with recomputed as (' ~ lifeline.identity_map_rows_sql(assigned) ~ '),
        seen_again as (
            select rewritten.identifier_type, rewritten.identifier_value, rewritten.stored_profile_id as profile_id,
                   rewritten.first_seen_at, rewritten.last_seen_at, ' ~ lifeline.run_stamp() ~ ' as changed_at
            from identity_map__rewritten as rewritten
            left join ' ~ components ~ ' as components on components.identifier_key = rewritten.identifier_key
            where not rewritten.moves_anchor
              and coalesce(components.component_key, rewritten.identifier_key) not in (select component_key from identity_map__affected)
        ),
        written as (
            select * from recomputed
            union all
            select * from seen_again
        ),
        gone as (
            select identifiers.identifier_type, identifiers.identifier_value
            from ' ~ identifiers ~ ' as identifiers
            where identifiers.identifier_key in (select identifier_key from identity_map__touched)
            union
            select identifier_type, identifier_value
            from (' ~ lifeline.unpivot_identifiers('(select * from ' ~ lifeline.identity_removed_relation() ~ ' where removed_at > ' ~ since ~ ') as removed') ~ ') as unpivoted
        )
        select * from written
        union all
        select gone.identifier_type, gone.identifier_value, cast(null as ' ~ dbt.type_string() ~ '),
               cast(null as ' ~ dbt.type_timestamp() ~ '), cast(null as ' ~ dbt.type_timestamp() ~ '), ' ~ lifeline.run_stamp() ~ '
        from gone
        left join written
            on written.identifier_type = gone.identifier_type and written.identifier_value = gone.identifier_value
        where written.identifier_type is null') -%}
  {%- do run_query('create temporary table ' ~ changed ~ ' as
        select batch.identifier_type, batch.identifier_value, true as complete
        from ' ~ batch ~ ' as batch
        left join ' ~ this ~ ' as stored
            on stored.identifier_type = batch.identifier_type and stored.identifier_value = batch.identifier_value
        where stored.profile_id is distinct from batch.profile_id') -%}
  {%- set sizes = run_query('select (select count(*) from identity_map__rewritten), (select count(*) from identity_map__touched),
        (select count(*) from identity_map__affected), (select count(*) from ' ~ batch ~ '), (select count(*) from ' ~ changed ~ ')').rows[0] -%}
  {{ log("identity_map (incremental): " ~ sizes[0] ~ " identifiers rewritten and " ~ sizes[1]
         ~ " that may move an anchor or a membership after " ~ mark.strftime("%Y-%m-%d %H:%M:%S.%f") ~ ": re-deriving "
         ~ sizes[2] ~ " components, writing " ~ sizes[3] ~ " rows; " ~ sizes[4] ~ " identifiers changed profile_id", info=True) }}
{%- endmacro %}

{#- A full rebuild of identity_map: the temporary table the post-hook reads holds one row with
    complete = false (the changes are unknown). -#}
{% macro identity_map_full_rebuild() -%}
  {%- if not execute -%}{{ return(none) }}{%- endif -%}
  {%- do run_query('drop table if exists ' ~ lifeline.identity_map_changed_table()) -%}
  {%- do run_query('create temporary table ' ~ lifeline.identity_map_changed_table() ~ ' as select cast(null as '
                   ~ dbt.type_string() ~ ') as identifier_type, cast(null as ' ~ dbt.type_string()
                   ~ ') as identifier_value, false as complete') -%}
{%- endmacro %}

{#- Post-hook of identity_map: deletes the tombstones, records the identifiers whose profile_id
    changed in this run (unknown after a full rebuild: complete = false), the run (its start, the
    previous run's, the salt's md5) and logs it in int_identity_records__runs. -#}
{% macro identity_map_post_hook() -%}
  {%- if not execute -%}{{ return('') }}{%- endif -%}
  {%- set state = lifeline.identity_side_relation(this, '__state') -%}
  {%- set changes = lifeline.identity_side_relation(this, '__changes') -%}
  {%- set changed = lifeline.identity_map_changed_table() -%}
  create table if not exists {{ changes }} (identifier_type {{ dbt.type_string() }}, identifier_value {{ dbt.type_string() }});
  delete from {{ changes }};
  insert into {{ changes }} (identifier_type, identifier_value)
      select identifier_type, identifier_value from {{ changed }} where complete;
  create table if not exists {{ state }} (ran_at {{ dbt.type_timestamp() }}, previous_ran_at {{ dbt.type_timestamp() }},
      complete {{ dbt.type_boolean() }}, salt_md5 {{ dbt.type_string() }});
  insert into {{ state }} (ran_at, previous_ran_at, complete, salt_md5)
      select {{ lifeline.run_stamp() }}, (select max(ran_at) from {{ state }}),
             not exists (select 1 from {{ changed }} where not complete),
             '{{ lifeline.profile_salt_digest() }}';
  delete from {{ state }} where ran_at < {{ lifeline.run_stamp() }};
  {{ lifeline.identity_chain_post_hook('profile_id is null') }}
{%- endmacro %}

{#- int_record_profiles: the identifiers whose identity_map row changed profile since its mark are
    in identity_map__changes when identity_map's latest run recorded them (complete) and its run
    before that is no later than the mark (this model saw everything identity_map wrote up to
    then; lifeline.identity_map_changes_coverage, macros/message_events_identity.sql), and
    int_identity_records was not rewritten in full since. Returns the mark (start of this model's last run) when it may resolve only the records
    written or removed since and those holding a changed identifier, else none (it resolves every
    record and compares it with the stored rows, logged). -#}
{% macro record_profiles_since(records, removed, identity_map) -%}
  {%- if not execute or not is_incremental() -%}{{ return(none) }}{%- endif -%}
  {%- set coverage = lifeline.identity_map_changes_coverage(identity_map, [removed]) -%}
  {%- set reason = namespace(text=coverage.reason) -%}
  {%- if reason.text is none and 'changed_at' not in (adapter.get_columns_in_relation(records) | map(attribute='name') | map('lower') | list) -%}
    {%- set reason.text = records ~ ' has no changed_at' -%}
  {%- endif -%}
  {%- if reason.text is none -%}
    {%- set records_since = lifeline.as_naive_datetime(run_query('select min(changed_at) from ' ~ records).rows[0][0]) -%}
    {%- if records_since is not none and records_since > coverage.mark -%}
      {%- set reason.text = 'int_identity_records was rewritten in full since the last run' -%}
    {%- endif -%}
  {%- endif -%}
  {%- if reason.text is not none -%}
    {{ log("int_record_profiles (incremental): " ~ reason.text ~ ": resolving every record", info=True) }}
    {{ return(none) }}
  {%- endif -%}
  {{ log("int_record_profiles (incremental): resolving the records created or removed after "
         ~ coverage.mark.strftime("%Y-%m-%d %H:%M:%S.%f") ~ " and those with one of "
         ~ run_query('select count(*) from ' ~ lifeline.identity_side_relation(identity_map, '__changes')).rows[0][0]
         ~ " identifiers whose profile_id changed in identity_map's last run", info=True) }}
  {{ return(coverage.mark) }}
{%- endmacro %}

{#- Post-hook of int_record_profiles: records the run (its start in <this>__last_run) and drops the
    copy of identity_map an earlier release kept (<this>__identity_map). -#}
{% macro record_profiles_post_hook() -%}
  {%- if not execute or flags.WHICH not in ('run', 'build') -%}{{ return('') }}{%- endif -%}
  {%- set last_run = lifeline.identity_side_relation(this, '__last_run') -%}
  create table if not exists {{ last_run }} (ran_at {{ dbt.type_timestamp() }});
  delete from {{ last_run }};
  insert into {{ last_run }} (ran_at) values ({{ lifeline.run_stamp() }});
  drop table if exists {{ lifeline.identity_side_relation(this, '__identity_map') }}
{%- endmacro %}
