DROP TRIGGER audit_head_no_delete;
DROP TRIGGER audit_head_forward_only;
