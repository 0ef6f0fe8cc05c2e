"""The surveys area (scope `survey`): who to survey next, and the record of sends and declines."""
