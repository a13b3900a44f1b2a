{#- Custom schemas are used as named (staging, intermediate, audiences, ...), not prefixed with the
    target schema, so the contract marts sit in the connection's default schema (main / public)
    and can be queried unqualified. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}{{ target.schema }}{%- else -%}{{ custom_schema_name | trim }}{%- endif -%}
{%- endmacro %}
