{#- Generic data test: no two rows share the values of `columns` (rows with a null in one of them
    are left out, as dbt's unique on a concatenation leaves them out).

    Grouping by the columns themselves instead of by one string built from them (`a || '|' || b`):
    no string per row, and no false match when a value holds the separator. 100,000 people, DuckDB,
    threads=2, CPU median of 7: lifecycle_stage_history 0.080 -> 0.033 s, identity_map 0.072 ->
    0.055 s, stg_order_items 0.045 -> 0.029 s. -#}
{% test unique_columns(model, columns) %}
select {{ columns | join(', ') }}, count(*) as n_records
from {{ model }}
where {% for column in columns %}{{ column }} is not null{% if not loop.last %} and {% endif %}{% endfor %}
group by {{ columns | join(', ') }}
having count(*) > 1
{% endtest %}
