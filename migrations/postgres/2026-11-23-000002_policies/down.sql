DROP TABLE policy_generation;
DROP TABLE policy_activations;
DROP TABLE policy_versions;
DROP TABLE policies;
