INSERT INTO hot_results SELECT 'ours', try_append_ours('hot-ours');
