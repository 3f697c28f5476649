DROP TRIGGER audit_head_forward_only ON audit_head;
DROP FUNCTION encours_head_forward_only();
