INSERT INTO hot_results SELECT 'plpgsql', try_append_plpgsql('hot-plpgsql');
