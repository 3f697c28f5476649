DROP TABLE review_resolutions;
DROP TABLE decisions;
