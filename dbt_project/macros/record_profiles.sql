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
{#- Incremental models that resolve identifiers through identity_map (int_profile_message_events;
    int_record_profiles reads identity_map__changes instead, macros/identity_map_incremental.sql):
    which identifiers changed since the model's last run.

    identity_map is rebuilt on every run and carries no change stamps, so each such model keeps a
    copy of the identity_map rows it last resolved against in the side table <this>__identity_map
    (and the start of that run in <this>__last_run). A run compares identity_map with the copy
    (one full outer join over identity_map, instead of resolving every stored row again): the
    identifiers whose row changed, appeared or vanished go to the temporary table
    <this>__changed_identifiers, and the post-hook remember_identity_map applies them to the copy.
    A row whose identifiers are not among them resolves as it did. The copy starts empty (every
    identifier counts as changed) on a full build or when a side table is missing. -#}

{% macro identity_map_copy_relation() -%}
  {{ return(api.Relation.create(database=this.database, schema=this.schema, identifier=this.identifier ~ '__identity_map')) }}
{%- endmacro %}

{#- The start of the model's last completed run (one row, ran_at), written by the post-hook. -#}
{% macro identity_map_last_run_relation() -%}
  {{ return(api.Relation.create(database=this.database, schema=this.schema, identifier=this.identifier ~ '__last_run')) }}
{%- endmacro %}

{% macro changed_identifiers_table() -%}
  {{ return(this.identifier ~ '__changed_identifiers') }}
{%- endmacro %}

{#- identity_map's rows of the given identifier types (all when none) as a parenthesised query. -#}
{% macro identity_map_rows(identity_map, types=none) -%}
  {%- set where = (" where identifier_type in ('" ~ (types | join("', '")) ~ "')") if types else '' -%}
  {{ return('(select identifier_type, identifier_value, profile_id from ' ~ identity_map ~ where ~ ')') }}
{%- endmacro %}

{#- Builds <this>__changed_identifiers (identifier_type, identifier_value: the identity_map rows of
    `types` that differ from the copy) and returns the start of the last run when the copy can be
    trusted (an incremental run with both side tables), else none. -#}
{% macro identity_map_changes(identity_map, types=none) -%}
  {%- if not execute -%}{{ return(none) }}{%- endif -%}
  {%- set copy = lifeline.identity_map_copy_relation() -%}
  {%- set last_run = lifeline.identity_map_last_run_relation() -%}
  {%- set changed = lifeline.changed_identifiers_table() -%}
  {%- set real_run = flags.WHICH in ('run', 'build') -%}
  {%- set copy_exists = adapter.get_relation(copy.database, copy.schema, copy.identifier) is not none -%}
  {%- set trusted = is_incremental() and copy_exists
                    and adapter.get_relation(last_run.database, last_run.schema, last_run.identifier) is not none -%}
  {%- if real_run and not trusted -%}
    {%- do run_query('create table if not exists ' ~ copy ~ ' (identifier_type ' ~ dbt.type_string() ~ ', identifier_value '
                     ~ dbt.type_string() ~ ', profile_id ' ~ dbt.type_string() ~ ')') -%}
    {%- do run_query('delete from ' ~ copy) -%}
  {%- endif -%}
  {%- do run_query('drop table if exists ' ~ changed) -%}
  {%- if real_run or copy_exists -%}
    {%- do run_query('create temporary table ' ~ changed ~ ' as
        select coalesce(current_map.identifier_type, copy.identifier_type) as identifier_type,
               coalesce(current_map.identifier_value, copy.identifier_value) as identifier_value
        from ' ~ lifeline.identity_map_rows(identity_map, types) ~ ' as current_map
        full outer join ' ~ lifeline.identity_map_rows(copy) ~ ' as copy
            on copy.identifier_type = current_map.identifier_type and copy.identifier_value = current_map.identifier_value
        where current_map.profile_id is null or copy.profile_id is null or copy.profile_id <> current_map.profile_id') -%}
  {%- endif -%}
  {%- if not trusted -%}{{ return(none) }}{%- endif -%}
  {{ return(lifeline.as_naive_datetime(run_query('select max(ran_at) from ' ~ last_run).rows[0][0])) }}
{%- endmacro %}

{#- Post-hook: the copy follows the changed identifiers, and the run is recorded (in a real run only). -#}
{% macro remember_identity_map(identity_map, types=none) -%}
  {%- if not execute or flags.WHICH not in ('run', 'build') -%}{{ return('') }}{%- endif -%}
  {%- set copy = lifeline.identity_map_copy_relation() -%}
  {%- set changed = lifeline.changed_identifiers_table() -%}
  {%- set last_run = lifeline.identity_map_last_run_relation() -%}
  delete from {{ copy }} where exists (select 1 from {{ changed }} as changed
      where changed.identifier_type = {{ copy }}.identifier_type and changed.identifier_value = {{ copy }}.identifier_value);
  insert into {{ copy }} (identifier_type, identifier_value, profile_id)
      select current_map.identifier_type, current_map.identifier_value, current_map.profile_id
      from {{ lifeline.identity_map_rows(identity_map, types) }} as current_map
      join {{ changed }} as changed
          on changed.identifier_type = current_map.identifier_type and changed.identifier_value = current_map.identifier_value;
  create table if not exists {{ last_run }} (ran_at {{ dbt.type_timestamp() }});
  delete from {{ last_run }};
  insert into {{ last_run }} (ran_at) values ({{ lifeline.run_stamp() }})
{%- endmacro %}
