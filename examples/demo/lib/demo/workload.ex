defmodule Demo.Workload do
  @moduledoc "Drives the demo: counter increments, bank deposits from a task pool, a crashing worker."

  def run do
    for _ <- 1..10, do: Demo.Counter.increment()

    Demo.TaskPool
    |> Task.Supervisor.async_stream(1..4, fn teller ->
      for n <- 1..5, do: Demo.Bank.deposit("account-#{rem(n, 2)}", teller * n)
      Demo.Bank.balance("account-0")
    end)
    |> Enum.to_list()

    flaky = Process.whereis(Demo.Flaky)

    for job <- 1..4 do
      Demo.Flaky.work(job)
      Process.sleep(20)
    end

    # Job 3 crashed the worker; wait until its supervisor has restarted it.
    wait_for_restart(flaky, 100)
    Demo.Flaky.work(5)
    Process.sleep(50)
    IO.puts("counter=#{Demo.Counter.value()} balance=#{Demo.Bank.balance("account-1")}")
  end

  defp wait_for_restart(_old, 0), do: :gave_up

  defp wait_for_restart(old, tries) do
    case Process.whereis(Demo.Flaky) do
      pid when is_pid(pid) and pid != old -> :restarted
      _ ->
        Process.sleep(50)
        wait_for_restart(old, tries - 1)
    end
  end
end
