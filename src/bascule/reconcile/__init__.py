"""Pure decisions of the flow of a change: desired vs observed becomes values.

Nothing here does I/O or reads the clock. ``diff`` compares two configuration documents and
returns ``DiffItem`` values that the store records with each revision and the WUI shows to a
person before a change is applied.
"""
