DROP TABLE shadow_results;
DROP TABLE shadow_runs;
