{#- Join a record-level relation to the record_profiles CTE (rows of int_record_profiles) on the
    record's identifier combination, exactly as int_record_profiles keyed it (nulls as ''). -#}
{% macro join_record_profiles(anonymous_id, user_id, email, phone) -%}
join record_profiles
        on record_profiles.anonymous_id_key = coalesce({{ anonymous_id }}, '')
        and record_profiles.user_id_key = coalesce({{ user_id }}, '')
        and record_profiles.email_key = coalesce({{ email }}, '')
        and record_profiles.phone_key = coalesce({{ phone }}, '')
{%- endmacro %}
