{#- Join a record-level relation to the record_profiles CTE (rows of int_record_profiles) on the
    record's identifier combination, exactly as int_record_profiles keyed it (nulls as ''). -#}
{% macro join_record_profiles(anonymous_id, user_id, email, phone) -%}
join record_profiles
        on record_profiles.anonymous_id_key = coalesce({{ anonymous_id }}, '')
        and record_profiles.user_id_key = coalesce({{ user_id }}, '')
        and record_profiles.email_key = coalesce({{ email }}, '')
        and record_profiles.phone_key = coalesce({{ phone }}, '')
{%- endmacro %}

{#- Left joins of an identifier combination (relation alias with user_id, email, phone,
    anonymous_id) to identity_map, one per identifier type; resolved_profile_id() picks the
    profile of the first identifier found in the order user_id, email, phone, anonymous_id. -#}
{% macro join_identity_map(alias, identity_map='identity_map') -%}
left join {{ identity_map }} as by_user
        on by_user.identifier_type = 'user_id' and by_user.identifier_value = {{ alias }}.user_id
    left join {{ identity_map }} as by_email
        on by_email.identifier_type = 'email' and by_email.identifier_value = {{ alias }}.email
    left join {{ identity_map }} as by_phone
        on by_phone.identifier_type = 'phone' and by_phone.identifier_value = {{ alias }}.phone
    left join {{ identity_map }} as by_cookie
        on by_cookie.identifier_type = 'anonymous_id' and by_cookie.identifier_value = {{ alias }}.anonymous_id
{%- endmacro %}

{% macro resolved_profile_id() -%}
coalesce(by_user.profile_id, by_email.profile_id, by_phone.profile_id, by_cookie.profile_id)
{%- endmacro %}
{#- Incremental int_record_profiles: which records a run must resolve again.

    A record's profile depends only on its identifiers' rows in identity_map. So a run resolves
    again only the records that int_identity_records wrote since the last run (new records, or a
    record whose rows changed: its changed_at), the records removed since (its side table
    int_identity_records__removed), and the records with an identifier whose identity_map row
    changed, appeared or vanished since the last run: identity_map compared with the copy of it
    kept in the side table <this>__identity_map, with the start of the run that made it in
    <this>__last_run (one full outer join of identity_map with that
    copy, instead of resolving every record and comparing it with the stored one).

    The changed identifiers go to the temporary table <this>__changed_identifiers; the post-hook
    (remember_identity_map) applies them to the copy. A run resolves every record and compares it
    with the stored rows (as before) when it cannot trust those inputs: a full build, nothing
    stored, the copy missing, or int_identity_records rewritten in full since the last run (its
    oldest changed_at is newer: a --full-refresh or its fallback, which also prunes the removed
    side table), or without the changed_at / removed side table it provides. -#}

{% macro identity_map_copy_relation() -%}
  {{ return(api.Relation.create(database=this.database, schema=this.schema, identifier=this.identifier ~ '__identity_map')) }}
{%- endmacro %}

{#- The start of the last run that completed (one row, ran_at), written by the post-hook. -#}
{% macro record_profiles_runs_relation() -%}
  {{ return(api.Relation.create(database=this.database, schema=this.schema, identifier=this.identifier ~ '__last_run')) }}
{%- endmacro %}

{% macro changed_identifiers_table() -%}
  {{ return(this.identifier ~ '__changed_identifiers') }}
{%- endmacro %}

{#- Builds <this>__changed_identifiers (identifier_type, identifier_value) and returns the mark
    (the start of its last run, in <this>__last_run) when this run may resolve only the touched records, else none
    (every record is resolved and compared). -#}
{% macro record_profiles_mark(records, removed, identity_map) -%}
  {%- if not execute -%}{{ return(none) }}{%- endif -%}
  {%- set copy = lifeline.identity_map_copy_relation() -%}
  {%- set changed = lifeline.changed_identifiers_table() -%}
  {%- set real_run = flags.WHICH in ('run', 'build') -%}
  {%- set last_run = lifeline.record_profiles_runs_relation() -%}
  {%- set copy_exists = adapter.get_relation(copy.database, copy.schema, copy.identifier) is not none
                        and adapter.get_relation(last_run.database, last_run.schema, last_run.identifier) is not none -%}
  {%- set state = namespace(reason=none, mark=none) -%}
  {%- if not is_incremental() -%}
    {%- set state.reason = 'full build' -%}
  {%- elif not copy_exists -%}
    {%- set state.reason = 'the copy ' ~ copy ~ ' of identity_map or ' ~ last_run ~ ' is missing' -%}
  {%- elif 'changed_at' not in (adapter.get_columns_in_relation(records) | map(attribute='name') | map('lower') | list)
           or adapter.get_relation(removed.database, removed.schema, removed.identifier) is none -%}
    {%- set state.reason = records ~ ' has no changed_at or no side table ' ~ removed -%}
  {%- else -%}
    {%- set marks = run_query('select (select max(ran_at) from ' ~ last_run ~ '), (select min(changed_at) from ' ~ records ~ ')').rows[0] -%}
    {%- set state.mark = lifeline.as_naive_datetime(marks[0]) -%}
    {%- set records_since = lifeline.as_naive_datetime(marks[1]) -%}
    {%- if state.mark is none -%}
      {%- set state.reason = 'no run recorded' -%}
    {%- elif records_since is not none and records_since > state.mark -%}
      {%- set state.reason = 'int_identity_records was rewritten in full since the last run' -%}
    {%- endif -%}
  {%- endif -%}
  {#- The copy starts empty on a full build, or when it is missing: every identifier is then new. -#}
  {%- if real_run and (not copy_exists or not is_incremental()) -%}
    {%- do run_query('create table if not exists ' ~ copy ~ ' (identifier_type ' ~ dbt.type_string() ~ ', identifier_value '
                     ~ dbt.type_string() ~ ', profile_id ' ~ dbt.type_string() ~ ')') -%}
    {%- do run_query('delete from ' ~ copy) -%}
  {%- endif -%}
  {%- do run_query('drop table if exists ' ~ changed) -%}
  {%- if real_run or copy_exists -%}
    {%- do run_query('create temporary table ' ~ changed ~ ' as
        select coalesce(current_map.identifier_type, copy.identifier_type) as identifier_type,
               coalesce(current_map.identifier_value, copy.identifier_value) as identifier_value
        from (select identifier_type, identifier_value, profile_id from ' ~ identity_map ~ ') as current_map
        full outer join ' ~ copy ~ ' as copy
            on copy.identifier_type = current_map.identifier_type and copy.identifier_value = current_map.identifier_value
        where current_map.profile_id is null or copy.profile_id is null or copy.profile_id <> current_map.profile_id') -%}
  {%- endif -%}
  {%- if state.reason is not none -%}
    {{ log("int_record_profiles (incremental): " ~ state.reason ~ ": resolving every record", info=True) if is_incremental() }}
    {{ return(none) }}
  {%- endif -%}
  {%- set n = run_query('select count(*) from ' ~ changed).rows[0][0] -%}
  {{ log("int_record_profiles (incremental): resolving the records written or removed after "
         ~ state.mark.strftime("%Y-%m-%d %H:%M:%S.%f") ~ " and those with one of " ~ n
         ~ " identifiers whose identity_map row changed", info=True) }}
  {{ return(state.mark) }}
{%- endmacro %}

{#- Post-hook: the copy of identity_map follows the changed identifiers (in a real run only). -#}
{% macro remember_identity_map(identity_map) -%}
  {%- if not execute or flags.WHICH not in ('run', 'build') -%}{{ return('') }}{%- endif -%}
  {%- set copy = lifeline.identity_map_copy_relation() -%}
  {%- set changed = lifeline.changed_identifiers_table() -%}
  {%- set last_run = lifeline.record_profiles_runs_relation() -%}
  create table if not exists {{ last_run }} (ran_at {{ dbt.type_timestamp() }});
  delete from {{ last_run }};
  insert into {{ last_run }} (ran_at) values ({{ lifeline.run_stamp() }});
  delete from {{ copy }} where exists (select 1 from {{ changed }} as changed
      where changed.identifier_type = {{ copy }}.identifier_type and changed.identifier_value = {{ copy }}.identifier_value);
  insert into {{ copy }} (identifier_type, identifier_value, profile_id)
      select current_map.identifier_type, current_map.identifier_value, current_map.profile_id
      from {{ identity_map }} as current_map
      join {{ changed }} as changed
          on changed.identifier_type = current_map.identifier_type and changed.identifier_value = current_map.identifier_value
{%- endmacro %}
