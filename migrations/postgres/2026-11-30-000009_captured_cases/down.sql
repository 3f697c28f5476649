DROP TABLE captured_case_supersessions;
DROP TABLE captured_cases;
